"""Express one mapped table as SQL on each side so both produce the same canonical text per row (pure).

Every compared value is rendered in the *target* column's type: the legacy side runs the mapping's SQL transform
and casts to the target type, the cloud side reads the column as it is. Rows then hash to the same value on both
sides exactly when the replicator would have written the same row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from replication.config import TableMapping
from replication.plan import TablePlan, quote_ident
from replication.transforms import INTEGER_TYPES, Transform, base_type


class SpecError(ValueError):
    """A table cannot be reconciled as mapped (no key, a missing target table); the message says why."""


@dataclass(frozen=True)
class SideSQL:
    """One side's SQL over one table: each compared column as an expression in the target type, and the key's place.

    Queries read `inner(where)`, a subquery computing every value once per row (as c0, c1, ...), and build the
    key, its text and the row hash over those names; `key_raw` is the key over the table itself, for filters.
    """

    relation: str  # `ONLY "schema"."table"`
    values: tuple[str, ...]
    key_at: tuple[int, ...]
    kind: str  # "int" | "bytes"
    version: str = "NULL::text"  # the row version (xmin) on the legacy side, to tell a row that changed meanwhile
    hashed: tuple[str, ...] = ()  # the row hash's operands (over c0, c1, ...); empty: hash the record's text
    key_column: str = ""  # the quoted key column when the key is one column read as it is (an index can find it)
    key_type: str = ""  # ... and its type

    def inner(self, where: str = "") -> str:
        cols = ", ".join(f"{v} AS c{i}" for i, v in enumerate(self.values))
        # OFFSET 0 keeps the subquery: each transform runs once per row, not once per use of its column.
        return f"(SELECT {cols}, {self.version} AS v FROM {self.relation}{where} OFFSET 0) r"

    @property
    def key_raw(self) -> str:
        return _key_sql([self.values[i] for i in self.key_at], self.kind)[0]

    @property
    def key(self) -> str:
        return _key_sql([f"c{i}" for i in self.key_at], self.kind)[0]

    @property
    def key_text(self) -> str:
        return _key_sql([f"c{i}" for i in self.key_at], self.kind)[1]

    @property
    def key_text_raw(self) -> str:
        return _key_sql([self.values[i] for i in self.key_at], self.kind)[1]

    def match_keys(self, keys: list[str]) -> tuple[str, list[Any]]:
        """Return a condition (and its parameters) true for the rows whose key text is one of `keys`.

        A key read as it is from one column is also compared in its own type, so the table's index finds the rows;
        the text comparison stays, so a key text that only equals a stored key after a cast matches nothing.
        """
        texts = f"{self.key_text_raw} = ANY(%s::text[])"
        if not self.key_column:
            return texts, [keys]
        return f"{self.key_column} = ANY(%s::text[]::{self.key_type}[]) AND {texts}", [keys, keys]

    @property
    def row_hash(self) -> str:
        """A 64-bit hash of the row, equal on both sides exactly when every column's canonical text is equal.

        Sums of these stay exact in numeric. The typed form hashes each value with its type's hash function (a
        column whose equality is looser than its text, such as unconstrained numeric, is hashed as text), then
        mixes the record's hash once more, so a sum over rows is not linear in the columns.
        """
        if self.hashed:
            return f"hashint8extended(hash_record_extended(ROW({', '.join(self.hashed)}), 0), 0)"
        # The record's text (where NULL and '' differ): for servers without hash_record_extended (before 14).
        return f"hashtextextended(ROW({', '.join(f'c{i}' for i in range(len(self.values)))})::text, 0)"

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(f"c{i}::text" for i in range(len(self.values)))


@dataclass(frozen=True)
class TableSpec:
    """How one source table is compared with its target: both sides' SQL, column names, the key's domain."""

    source: str  # schema.table on the legacy side
    target: str  # schema.table on the cloud side
    columns: tuple[str, ...]  # target column names, in comparison order
    key_columns: tuple[str, ...]  # target key column names
    key_kind: str  # "int" | "bytes"
    legacy: SideSQL
    cloud: SideSQL
    plan: TablePlan
    python_only: tuple[str, ...] = ()  # source columns whose transform has no SQL form: rows are compared in Python

    @property
    def in_sql(self) -> bool:
        return not self.python_only


def sql_form(transform: Transform | None, quoted: str) -> str | None:
    """Return the transform's SQL over a quoted column, the column itself without one, or None when it has none."""
    if transform is None:
        return quoted
    try:
        return transform.sql(quoted)
    except NotImplementedError:
        return None


def _legacy_value(quoted: str, source_type: str, transform: Transform | None, target_type: str) -> str | None:
    expr = sql_form(transform, quoted)
    if expr is None:
        return None
    produced = transform.output_type if transform else source_type
    if produced == target_type:
        return expr
    if transform is None and base_type(source_type) == "character":
        # char(n)::text trims the padding, but the replicator carries the padded text form: keep it.
        expr = f"textin(bpcharout({quoted}))"
    return f"({expr})::{target_type}"


# Types whose equality is exactly equality of their text form, so their own hash functions can stand in for it.
_HASH_AS_IS = frozenset({
    "smallint", "integer", "bigint", "boolean", "date", "uuid", "time without time zone",
    "timestamp without time zone", "timestamp with time zone",
})  # fmt: skip
_HASH_BYTES = frozenset({"text", "character varying", "character"})  # bytewise under "C", whatever the collation


def hash_operand(i: int, type_sql: str) -> str:
    """Return how column `c{i}` of a target type enters the typed row hash: as itself, bytewise, or as its text."""
    base = base_type(type_sql)
    if base in _HASH_AS_IS or (base == "numeric" and type_sql != base):  # numeric(p,s): one scale, one text
        return f"c{i}"
    if base in _HASH_BYTES:
        return f'c{i} COLLATE "C"'
    return f"c{i}::text"


def _key_sql(values: list[str], kind: str) -> tuple[str, str]:
    text = f"({values[0]})::text" if len(values) == 1 else f"ROW({', '.join(values)})::text"
    if kind == "int":
        return f"({values[0]})::bigint", text
    # Text keys are ranged by their UTF-8 bytes: one order on both sides whatever each database's collation.
    return f"convert_to({text}, 'UTF8')", text


def build_spec(
    mapping: TableMapping,
    plan: TablePlan,
    source_types: Mapping[str, str],
    key: tuple[str, ...],
    typed_hash: bool = True,
) -> TableSpec:
    """Return the comparison spec of one table from its replication plan and the source column types.

    `typed_hash` needs `hash_record_extended` (PostgreSQL 14) on both sides; without it rows hash as record text.
    """
    if not key:
        raise SpecError(f"{mapping.source} has no primary key: rows cannot be matched by key")
    legacy_cols, cloud_cols, python_only = [], [], []
    for column in plan.columns:
        rule = mapping.rule_for(column.source)
        transform = rule.transform if rule else None
        value = _legacy_value(quote_ident(column.source), source_types[column.source], transform, column.type_sql)
        if value is None:
            python_only.append(column.source)
            value = "NULL"
        legacy_cols.append(value)
        cloud_cols.append(quote_ident(column.target))
    names = tuple(c.target for c in plan.columns)
    key_at = tuple(i for i, c in enumerate(plan.columns) if c.source in key)
    key_types = [base_type(plan.columns[i].type_sql) for i in key_at]
    kind = "int" if len(key_at) == 1 and key_types[0] in INTEGER_TYPES else "bytes"
    hashed = tuple(hash_operand(i, c.type_sql) for i, c in enumerate(plan.columns)) if typed_hash else ()
    sides = []
    for cols, relation, version in (
        (legacy_cols, mapping.source, "xmin::text"),
        (cloud_cols, f"{plan.target_schema}.{plan.target_table}", "NULL::text"),
    ):
        schema, table = relation.split(".", 1)
        # The key's own column, compared in its type by an index, when this side reads it unchanged.
        at = key_at[0] if key_at else 0
        plain = len(key_at) == 1 and cols[at] in (
            quote_ident(plan.columns[at].source),
            quote_ident(plan.columns[at].target),
        )
        key_column, key_type = (cols[at], plan.columns[at].type_sql) if plain else ("", "")
        sides.append(SideSQL(f"ONLY {quote_ident(schema)}.{quote_ident(table)}", tuple(cols), key_at, kind, version,
                             hashed, key_column, key_type))  # fmt: skip
    return TableSpec(
        mapping.source, plan.target, names, tuple(names[i] for i in key_at), kind, sides[0], sides[1], plan,
        tuple(python_only),
    )  # fmt: skip
