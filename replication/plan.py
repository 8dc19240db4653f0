"""Decide how one source relation lands in its target table, and refuse changes that would corrupt it (pure).

`plan_table` compares what the source announces (a pgoutput Relation plus catalog facts) with the mapping and the
target table as it is, and returns the column plan plus the DDL that makes the target fit (create the table, add
columns the source gained). Anything that cannot be carried safely raises IncompatibleChange naming table and column.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from replication import pgtypes
from replication.config import TableMapping
from replication.copytext import NULL, FieldBuilder, escape, field_builder
from replication.pgoutput import UNCHANGED, Relation, TupleData
from replication.transforms import INTEGER_TYPES, STRING_TYPES, Transform, TransformError, base_type

_MODIFIERS = re.compile(r"\((\d+)(?:,(\d+))?\)")
_ROUNDING = frozenset({"numeric", "timestamp with time zone", "timestamp without time zone", "time without time zone"})


class IncompatibleChange(RuntimeError):
    """The source cannot be carried into the target without losing or corrupting data; names table and column."""

    def __init__(self, table: str, column: str | None, reason: str) -> None:
        self.table, self.column, self.reason = table, column, reason
        super().__init__(f"{table}" + (f" column {column}" if column else "") + f": {reason}")


@dataclass(frozen=True)
class TargetColumn:
    """One column of the target table as the target's catalog describes it."""

    name: str
    type_sql: str
    nullable: bool = True
    has_default: bool = False


@dataclass(frozen=True)
class SourceFacts:
    """What the source catalog says about one table beyond the Relation message."""

    types: Mapping[str, str]  # column -> format_type(atttypid, atttypmod)
    key: tuple[str, ...]  # primary key columns, or () when the table relies on REPLICA IDENTITY FULL
    defaults: Mapping[str, str] = field(default_factory=dict)  # column -> default that filled existing rows


@dataclass(frozen=True)
class ColumnPlan:
    """How one source column lands: its tuple position, target column, and conversions."""

    index: int  # position in the source tuple
    source: str
    target: str
    convert: Callable[[bytes], Any]  # text value -> Python value in the target's terms
    is_json: bool
    type_sql: str = "text"  # the target column's type
    to_copy: FieldBuilder = escape  # text value -> COPY text field, without a Python value in between


@dataclass(frozen=True)
class TablePlan:
    """How rows of one source relation are written to the target: columns, key, and DDL to run first."""

    source: str
    target_schema: str
    target_table: str
    columns: tuple[ColumnPlan, ...]
    key: tuple[ColumnPlan, ...]  # the target row identity (all columns under REPLICA IDENTITY FULL without a key)
    ddl: tuple[str, ...] = ()
    select_sql: str = ""  # the snapshot's SELECT list over the source table
    keyed: bool = True  # False: REPLICA IDENTITY FULL without a key, the whole old row identifies it

    @property
    def target(self) -> str:
        return f"{self.target_schema}.{self.target_table}"

    @cached_property
    def has_json(self) -> bool:
        return any(c.is_json for c in self.columns)

    @cached_property
    def _converters(self) -> tuple[tuple[int, Callable[[bytes], Any]], ...]:
        return tuple((c.index, c.convert) for c in self.columns)

    @cached_property
    def _key_converters(self) -> tuple[tuple[int, Callable[[bytes], Any]], ...]:
        return tuple((c.index, c.convert) for c in self.key)

    def row(self, values: TupleData) -> tuple[Any, ...]:
        """Return the target values of a tuple, UNCHANGED kept as the marker; a bad value raises TransformError."""
        try:
            return tuple([
                None if (raw := values[i]) is None else raw if raw is UNCHANGED else fn(raw)  # type: ignore[arg-type]
                for i, fn in self._converters
            ])  # fmt: skip
        except (ValueError, TypeError, ArithmeticError):
            raise self._explain(values, self.columns) from None

    @cached_property
    def _copy_builders(self) -> tuple[tuple[int, FieldBuilder], ...]:
        return tuple((c.index, c.to_copy) for c in self.columns)

    def copy_line(self, values: TupleData) -> bytes:
        """Return a new row as one line of COPY text (no UNCHANGED values); a bad value raises TransformError."""
        try:
            fields = [NULL if (raw := values[i]) is None else fn(raw) for i, fn in self._copy_builders]  # type: ignore[arg-type]
            return b"\t".join(fields) + b"\n"
        except (ValueError, TypeError, ArithmeticError):
            raise self._explain(values, self.columns) from None

    def key_of(self, values: TupleData) -> tuple[Any, ...]:
        """Return the target key values of a tuple (a new row, an old key or an old row)."""
        try:
            return tuple([None if (raw := values[i]) is None else fn(raw) for i, fn in self._key_converters])  # type: ignore[arg-type]
        except (ValueError, TypeError, ArithmeticError):
            raise self._explain(values, self.key) from None

    def _explain(self, values: TupleData, columns: Sequence[ColumnPlan]) -> TransformError:
        for col in columns:
            raw = values[col.index]
            if isinstance(raw, bytes):
                try:
                    col.convert(raw)
                except (ValueError, TypeError, ArithmeticError) as exc:
                    return TransformError(f"{self.source} column {col.source}: cannot carry {raw!r}: {exc}")
        return TransformError(f"{self.source}: a value cannot be carried")


def quote_ident(name: str) -> str:
    """Quote an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _modifiers(type_sql: str) -> tuple[int, ...]:
    found = _MODIFIERS.search(type_sql)
    return tuple(int(g) for g in found.groups() if g is not None) if found else ()


def compatible(source_sql: str, target_sql: str) -> bool:
    """True when the target type takes every source value without silently rounding or reinterpreting it.

    Values that do not fit (too long, out of range) make the target refuse the row loudly, which is not silent; a
    smaller numeric scale or time precision would round quietly, and a different kind of type would reinterpret.
    """
    if source_sql == target_sql or base_type(target_sql) == "text":
        return True
    src, dst = base_type(source_sql), base_type(target_sql)
    if src == dst or (src in INTEGER_TYPES and dst == "numeric"):
        if dst not in _ROUNDING:
            return True
        src_mod, dst_mod = _modifiers(source_sql), _modifiers(target_sql)
        if not dst_mod:
            return True
        if src in INTEGER_TYPES:
            return True
        if not src_mod:
            return False
        index = 1 if dst == "numeric" else 0
        return ((*dst_mod, 0))[index] >= ((*src_mod, 0))[index]
    if (src in INTEGER_TYPES and dst in INTEGER_TYPES) or (src, dst) == ("real", "double precision"):
        return True
    return any(src in family and dst in family for family in (STRING_TYPES, frozenset({"json", "jsonb"})))


def _column_sql(column: ColumnPlan, transform: Transform | None) -> str:
    expr = transform.sql(quote_ident(column.source)) if transform else quote_ident(column.source)
    return f"{expr} AS {quote_ident(column.target)}"


def plan_table(
    mapping: TableMapping,
    relation: Relation,
    facts: SourceFacts,
    target: Mapping[str, TargetColumn] | None,
    type_names: Mapping[int, str] | None = None,
) -> TablePlan:
    """Return the plan for `relation` under `mapping` against the target as it is (None: the table is missing)."""
    table, names = mapping.source, type_names or {}
    present = {col.name for col in relation.columns}
    for column in sorted(set(mapping.columns) - present):
        raise IncompatibleChange(table, column, f"is mapped ({mapping.where()}) but the source no longer has it")
    key_names = facts.key or tuple(c.name for c in relation.columns if mapping.rule_for(c.name) is not None)
    columns, ddl, defs, selects = [], [], [], []
    for index, col in enumerate(relation.columns):
        rule = mapping.rule_for(col.name)
        if rule is None:
            if col.name in key_names:
                raise IncompatibleChange(table, col.name, "is part of the key and cannot be excluded")
            continue
        source_type = facts.types.get(col.name)
        if source_type is None:
            raise IncompatibleChange(table, col.name, "is announced by the stream but missing from the catalog")
        transform = rule.transform
        if transform and base_type(source_type) not in transform.accepts:
            raise IncompatibleChange(
                table, col.name, f"is {source_type} now; transform {transform.name} takes {sorted(transform.accepts)}"
            )
        produced = transform.output_type if transform else source_type
        existing = target.get(rule.target) if target is not None else None
        if existing is not None and not compatible(produced, existing.type_sql):
            raise IncompatibleChange(
                table, col.name, f"gives {produced} but {mapping.target}.{rule.target} is {existing.type_sql}"
            )
        convert = pgtypes.converter(col.type_oid, names.get(col.type_oid, ""))
        if transform is not None:
            convert = _chain(convert, transform)
        target_type = existing.type_sql if existing else produced
        is_json = base_type(target_type) in {"json", "jsonb"}
        to_copy = field_builder(col.type_oid, convert if transform is not None else None)
        plan = ColumnPlan(index, col.name, rule.target, convert, is_json, target_type, to_copy)
        columns.append(plan)
        selects.append(_column_sql(plan, transform))
        if target is None:
            defs.append(f"{quote_ident(rule.target)} {produced}")
        elif existing is None:
            default = facts.defaults.get(col.name)
            ddl.append(
                f"ALTER TABLE {quote_ident(mapping.target_schema)}.{quote_ident(mapping.target_table)} "
                f"ADD COLUMN IF NOT EXISTS {quote_ident(rule.target)} {produced}"
                + (f" DEFAULT {default}" if default else "")
            )
    if target is not None:
        fed = {c.target for c in columns}
        for name, tcol in target.items():
            if name not in fed and not tcol.nullable and not tcol.has_default:
                raise IncompatibleChange(
                    mapping.target, name, "is NOT NULL without a default and no source column feeds it any more"
                )
    key = tuple(c for c in columns if c.source in key_names)
    if target is None:
        pk = ", ".join(quote_ident(c.target) for c in key)
        target_name = f"{quote_ident(mapping.target_schema)}.{quote_ident(mapping.target_table)}"
        ddl.insert(0, f"CREATE SCHEMA IF NOT EXISTS {quote_ident(mapping.target_schema)}")
        ddl.insert(1, f"CREATE TABLE IF NOT EXISTS {target_name} ({', '.join(defs)}" + (
            f", PRIMARY KEY ({pk}))" if facts.key else ")"
        ))  # fmt: skip
    return TablePlan(
        table, mapping.target_schema, mapping.target_table, tuple(columns), key, tuple(ddl), ", ".join(selects),
        keyed=bool(facts.key),
    )  # fmt: skip


def _chain(convert: Callable[[bytes], Any], transform: Transform) -> Callable[[bytes], Any]:
    # Fused for speed: errors surface as ValueError and TablePlan.row names the column.
    python = transform.python
    if convert is pgtypes.SCALARS[25]:
        return transform.from_text or (lambda raw: python(raw.decode("utf-8")))
    if convert is int:
        return transform.from_int_text or (lambda raw: python(int(raw)))
    return lambda raw: python(convert(raw))
