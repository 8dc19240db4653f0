"""Read both catalogs and turn the selected mapped tables into comparison specs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import psycopg

from parallel_run.reconcile.spec import SpecError, TableSpec, build_spec, sql_form
from replication.config import MappingConfig, TableMapping
from replication.plan import IncompatibleChange, TargetColumn, plan_table, quote_ident
from replication.source import table_facts

Conn = psycopg.Connection[Any]
TYPED_HASH_SINCE = 140000  # hash_record_extended
_DESCRIBE = (
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, a.atthasdef "
    "FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY a.attnum"
)


def select_tables(mapping: MappingConfig, names: Sequence[str]) -> list[TableMapping]:
    """Return the mapped tables named by legacy name, cloud name or bare table name (all when none are named).

    Raises SpecError naming the unknown name and the tables the mapping knows.
    """
    if not names:
        return list(mapping.tables.values())
    chosen: list[TableMapping] = []
    for name in names:
        found = [
            t for t in mapping.tables.values()
            if name in (t.source, t.target) or name in (t.source_table, t.target_table)
        ]  # fmt: skip
        if len(found) != 1:
            known = ", ".join(f"{t.source} ({t.target})" for t in mapping.tables.values())
            what = "is ambiguous" if found else "is not in the mapping"
            raise SpecError(f"table {name!r} {what}; known tables: {known}")
        if found[0] not in chosen:
            chosen.append(found[0])
    return chosen


def _target_columns(conn: Conn, table: TableMapping) -> dict[str, TargetColumn] | None:
    name = f"{quote_ident(table.target_schema)}.{quote_ident(table.target_table)}"
    if conn.execute("SELECT to_regclass(%s)", (name,)).fetchone() == (None,):
        return None
    return {r[0]: TargetColumn(r[0], r[1], r[2], r[3]) for r in conn.execute(_DESCRIBE, (name,))}


def _sql_placeholders(table: TableMapping) -> TableMapping:
    """Return the mapping with a NULL SQL form for transforms that have none, so the table can still be planned."""
    columns = {
        name: replace(rule, transform=replace(rule.transform, sql=lambda quoted: "NULL"))
        if rule.transform is not None and sql_form(rule.transform, '"x"') is None
        else rule
        for name, rule in table.columns.items()
    }
    return replace(table, columns=columns)


def load_specs(legacy: Conn, cloud: Conn, tables: Sequence[TableMapping]) -> list[TableSpec]:
    """Plan each table as the replicator would and return its comparison spec; refuse with SpecError otherwise."""
    specs = []
    for table in tables:
        facts = table_facts(legacy, table.source)
        if facts is None:
            raise SpecError(f"legacy table {table.source} does not exist ({table.where()})")
        target = _target_columns(cloud, table)
        if target is None:
            raise SpecError(f"cloud table {table.target} does not exist (has the replicator copied it yet?)")
        try:
            plan = plan_table(_sql_placeholders(table), facts.relation(), facts.facts(), target)
        except IncompatibleChange as exc:
            raise SpecError(f"cannot compare as mapped: {exc}") from None
        if plan.ddl:
            raise SpecError(f"cloud table {table.target} lacks columns the mapping feeds: {'; '.join(plan.ddl)}")
        typed = min(legacy.info.server_version, cloud.info.server_version) >= TYPED_HASH_SINCE
        specs.append(build_spec(table, plan, facts.facts().types, facts.key, typed))
    return specs
