"""Column transforms of the mapping: each has a Python form (stream), an SQL form (snapshot) and typed edges (pure).

A transform must give the same value both ways, because the snapshot runs its SQL form inside the source's
COPY and the stream runs its Python form on decoded values; tests hold the two against each other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

_MODIFIER = re.compile(r"\(\d+(?:,\d+)?\)")
STRING_TYPES = frozenset({"text", "character varying", "character", '"char"', "name"})
INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})


class TransformError(ValueError):
    """A value could not be transformed; str() names the value and the rule it broke."""


def base_type(type_sql: str) -> str:
    """Return a formatted type without its modifier: `character varying(60)` -> `character varying`."""
    return _MODIFIER.sub("", type_sql).strip()


def quote_literal(text: str) -> str:
    """Quote a string as an SQL literal."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Transform:
    """One named transform: the source types it accepts, the type it produces, and its two equal forms."""

    name: str
    accepts: frozenset[str]  # base source types (format_type without modifier)
    output_type: str  # the target column type it produces, used when the replicator creates a column
    python: Callable[[Any], Any]
    sql: Callable[[str], str]  # quoted source column -> SQL expression over it
    options: Mapping[str, str] = field(default_factory=dict)
    # The same function straight from the bytes pgoutput sends (a string, an integer), skipping a conversion.
    from_text: Callable[[bytes], Any] | None = None
    from_int_text: Callable[[bytes], Any] | None = None

    def apply(self, value: Any) -> Any:
        """Transform one non-NULL value, or raise TransformError."""
        try:
            return self.python(value)
        except TransformError:
            raise
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise TransformError(f"{self.name} cannot take {value!r}: {exc}") from None


def _digits(value: str, width: int | None = None) -> str:
    text = value.rstrip(" ")
    if not text.isascii() or not text.isdigit() or (width is not None and len(text) != width):
        raise TransformError(f"expected {width or 'only'} digits, got {value!r}")
    return text


def _yyyymmdd(value: str) -> date:
    return date.fromisoformat(_digits(value, 8))


def _hhmmss(value: str) -> time:
    text = _digits(value, 6)
    return time(int(text[:2]), int(text[2:4]), int(text[4:]))


def _digits_bytes(raw: bytes, width: int | None = None) -> bytes:
    text = raw.rstrip(b" ")
    if not text.isdigit() or (width is not None and len(text) != width):  # bytes.isdigit is ASCII only
        raise TransformError(f"expected {width or 'only'} digits, got {raw.decode('utf-8', 'replace')!r}")
    return text


def _yyyymmdd_bytes(raw: bytes) -> date:
    return date.fromisoformat(_digits_bytes(raw, 8).decode("ascii"))


def _cents(value: int | Decimal) -> Decimal:
    if isinstance(value, Decimal) and value != value.to_integral_value():
        raise TransformError(f"cents must be whole, got {value}")
    return Decimal(int(value)).scaleb(-2)


BUILTIN: dict[str, Transform] = {
    t.name: t
    for t in (
        Transform(
            "cents_to_decimal", INTEGER_TYPES | {"numeric"}, "numeric(20,2)", _cents,
            lambda c: f"({c}::numeric / 100)::numeric(20,2)",
            from_int_text=lambda raw: Decimal(int(raw)).scaleb(-2),
        ),
        Transform(
            "digits_to_int", STRING_TYPES, "bigint", lambda v: int(_digits(v)),
            lambda c: f"CASE WHEN rtrim({c}) ~ '^[0-9]+$' THEN rtrim({c})::bigint "
            f"ELSE ('not digits: ' || {c})::bigint END",
            from_text=lambda raw: int(_digits_bytes(raw)),
        ),
        Transform(
            "yyyymmdd_to_date", STRING_TYPES, "date", _yyyymmdd,
            lambda c: f"CASE WHEN {c} ~ '^[0-9]{{8}}$' THEN {c}::date ELSE ('not YYYYMMDD: ' || {c})::date END",
            from_text=_yyyymmdd_bytes,
        ),
        Transform(
            "yyyymmdd_to_timestamptz", STRING_TYPES, "timestamp with time zone",
            lambda v: datetime.combine(_yyyymmdd(v), time(), tzinfo=UTC),
            lambda c: f"(CASE WHEN {c} ~ '^[0-9]{{8}}$' THEN {c}::date ELSE ('not YYYYMMDD: ' || {c})::date END"
            "::timestamp AT TIME ZONE 'UTC')",
            from_text=lambda raw: datetime.combine(_yyyymmdd_bytes(raw), time(), tzinfo=UTC),
        ),
        Transform(
            "hhmmss_to_time", STRING_TYPES, "time without time zone", _hhmmss,
            lambda c: f"CASE WHEN {c} ~ '^[0-9]{{6}}$' THEN {c}::time ELSE ('not HHMMSS: ' || {c})::time END",
        ),
        Transform("rtrim", STRING_TYPES, "text", lambda v: v.rstrip(" "), lambda c: f"rtrim({c})"),
        Transform("lower", STRING_TYPES, "text", lambda v: v.lower(), lambda c: f"lower({c})"),
    )
}  # fmt: skip


def value_map(mapping: Mapping[str, str]) -> Transform:
    """Return a transform that maps each listed text value to another; any other value is an error both ways."""
    table = {str(k): str(v) for k, v in mapping.items()}

    def python(value: str) -> str:
        key = value.rstrip(" ")
        if key not in table:
            raise TransformError(f"no mapping for {value!r} (known: {', '.join(sorted(table))})")
        return table[key]

    def sql(col: str) -> str:
        arms = " ".join(f"WHEN {quote_literal(k)} THEN {quote_literal(v)}" for k, v in table.items())
        # An unmapped value makes the cast fail with the value in the message: the snapshot stops, like the stream.
        return f"CASE rtrim({col}) {arms} ELSE ('no mapping for value: ' || {col})::int::text END"

    return Transform("map", STRING_TYPES, "text", python, sql, table)
