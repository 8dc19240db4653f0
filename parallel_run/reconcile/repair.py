"""Re-copy differing rows from legacy into the cloud store, through the mapping, in one cloud transaction.

The legacy rows are read in one snapshot with the replicator's own SELECT (the mapping's transforms in SQL, as the
initial snapshot copies them); the cloud transaction deletes every differing key and copies the legacy rows back
in, so missing rows appear, extra rows go and different rows are replaced. When waiting is on, the replicator is
first let apply up to the read, so none of the copied rows can still arrive from the stream as an insert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from parallel_run.reconcile import pyrows
from parallel_run.reconcile.catalog import load_specs, select_tables
from parallel_run.reconcile.lag import insert_lsn, nudge, wait_applied
from parallel_run.reconcile.model import Options, Result
from parallel_run.reconcile.spec import TableSpec
from replication.plan import quote_ident
from replication.source import connect

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class Repaired:
    """What one table's repair did: keys deleted from the cloud store and legacy rows copied back in."""

    target: str
    deleted: int
    copied: int


def _legacy_copy(conn: Conn, spec: TableSpec, keys: list[str]) -> bytes | list[tuple[Any, ...]]:
    if not spec.in_sql:
        rows = pyrows.legacy_rows(conn, spec)
        return [rows[k].values for k in keys if k in rows]
    schema, table = spec.source.split(".", 1)
    where, params = spec.legacy.match_keys(keys)
    relation = f"ONLY {quote_ident(schema)}.{quote_ident(table)}"
    sql = f"COPY (SELECT {spec.plan.select_sql} FROM {relation} WHERE {where}) TO STDOUT"
    out = bytearray()
    with conn.cursor() as cur, cur.copy(sql, params) as copy:
        for block in copy:
            out += block
    return bytes(out)


def _write(conn: Conn, spec: TableSpec, keys: list[str], rows: bytes | list[tuple[Any, ...]]) -> Repaired:
    schema, table = spec.target.split(".", 1)
    name = f"{quote_ident(schema)}.{quote_ident(table)}"
    where, params = spec.cloud.match_keys(keys)
    deleted = conn.execute(f"DELETE FROM {name} WHERE {where}", params).rowcount
    cols = ", ".join(quote_ident(c) for c in spec.columns)
    if isinstance(rows, bytes):
        with conn.cursor() as cur, cur.copy(f"COPY {name} ({cols}) FROM STDIN") as copy:
            copy.write(rows)
        copied = rows.count(b"\n")
    else:
        marks = ", ".join(["%s"] * len(spec.columns))
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {name} ({cols}) VALUES ({marks})", rows)
        copied = len(rows)
    return Repaired(spec.target, deleted, copied)


def repair(options: Options, result: Result) -> list[Repaired]:
    """Replace every differing row of `result` in the cloud store by its legacy row, atomically; return counts."""
    keys = {t.target: [d.key for d in (*t.diffs, *t.unsettled)] for t in result.tables}
    keys = {t: k for t, k in keys.items() if k}
    if not keys:
        return []
    chosen = [t for t in select_tables(options.mapping, options.tables) if t.target in keys]
    with (
        connect(options.source, "strangler-reconcile-repair") as legacy,
        connect(options.target, "strangler-reconcile-repair") as cloud,
    ):
        specs = load_specs(legacy, cloud, chosen)
        with legacy.transaction():
            legacy.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            rows = {s.target: _legacy_copy(legacy, s, keys[s.target]) for s in specs}
            lsn = insert_lsn(legacy)
        if options.wait:
            nudge(legacy)
            wait_applied(cloud, options.slot, lsn, options.wait_timeout_s)
        with cloud.transaction():
            return [_write(cloud, s, keys[s.target], rows[s.target]) for s in specs]
