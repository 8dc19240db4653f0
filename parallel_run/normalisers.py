"""Named normaliser functions a compare rule may apply to a value, and the load-time check of their names (pure).

Every normaliser is total: a value it does not understand is returned unchanged, so a rule can never make the
comparator fail; it can only fail to make two values equal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Final

from core.rules import RulesError, RuleSet

Normaliser = Callable[[Any], Any]
_NUMERIC = re.compile(r"^\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*$")
_COMPACT_DATE = re.compile(r"^[0-9]{8}$")


def strip(value: Any) -> Any:
    """Strip leading and trailing whitespace from a string."""
    return value.strip() if isinstance(value, str) else value


def lower(value: Any) -> Any:
    """Lower-case a string (Unicode case folding)."""
    return value.casefold() if isinstance(value, str) else value


def digits_only(value: Any) -> Any:
    """Keep only the digits of a string or number: '+44 (0)20 7946-0018' reads '4402079460018'."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return value
    return "".join(ch for ch in str(value) if ch.isdigit())


def to_decimal(value: Any) -> Any:
    """Read a number or a numeric string as a Decimal, so "100.50", 100.5 and "1.005E2" are equal."""
    if isinstance(value, bool):
        return value
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))  # the shortest text that round-trips: 0.1 reads 0.1, not 0.1000000000000000055
    if isinstance(value, str) and _NUMERIC.match(value):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            return value
    return value


def parse_instant(value: str) -> datetime | date | None:
    """Read ISO-8601 text as an aware UTC datetime (naive is taken as UTC) or a plain date; None if it is neither."""
    text = value.strip()
    if _COMPACT_DATE.match(text):
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    if len(text) == 10:
        try:
            return date.fromisoformat(text)
        except ValueError:
            return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    # Legacy systems often omit the offset; the platform's convention is that such instants are UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso_date(value: Any) -> Any:
    """Reduce an ISO-8601 instant (any offset, taken to UTC), a plain date or YYYYMMDD to 'YYYY-MM-DD'."""
    if not isinstance(value, str):
        return value
    moment = parse_instant(value)
    if moment is None:
        return value
    return (moment.date() if isinstance(moment, datetime) else moment).isoformat()


_REGISTRY: Final[Mapping[str, Normaliser]] = MappingProxyType({
    "strip": strip,
    "lower": lower,
    "digits_only": digits_only,
    "decimal": to_decimal,
    "iso_date": iso_date,
})  # fmt: skip


def normalisers() -> Mapping[str, Normaliser]:
    """Return the read-only registry of named normalisers a `compare.normalise` rule may name."""
    return _REGISTRY


def check_compare_rules(rules: RuleSet) -> None:
    """Refuse a rule set whose compare rules name an unknown normaliser, with file:line and capability."""
    known = normalisers()
    for cap in rules.capabilities.values():
        for path, name in cap.compare.normalise.items():
            if name not in known:
                reason = f"unknown normaliser {name!r} for {path} (known: {', '.join(sorted(known))})"
                raise RulesError(rules.source, cap.compare.line, reason, cap.name)
