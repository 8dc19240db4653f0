"""PostgresApplier: the applier port over SQLAlchemy and psycopg, batching runs of rows (COPY, pipelined statements).

Consecutive changes of one kind to one table are buffered as a run and written together — inserts by COPY,
updates and deletes by a pipelined executemany — always in source order. The checkpoint row lives in the target
(`strangler_cdc.checkpoints`) and is written in the same transaction as the rows it covers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.copy import QueuedLibpqWriter
from psycopg.types.json import Jsonb

from core.db import AdvisoryLocks
from replication.applier import Applier, ApplyError, Checkpoint
from replication.pgoutput import UNCHANGED, TupleData, lsn_to_str, str_to_lsn
from replication.plan import ColumnPlan, TablePlan, TargetColumn, quote_ident

CHECKPOINT_DDL = """
CREATE SCHEMA IF NOT EXISTS strangler_cdc;
CREATE TABLE IF NOT EXISTS strangler_cdc.checkpoints (
    slot        text        PRIMARY KEY,
    lsn         pg_lsn      NOT NULL,
    commit_time timestamptz,
    applied_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
"""
_READ = sa.text("SELECT lsn::text, commit_time FROM strangler_cdc.checkpoints WHERE slot = :slot")
# The guard refuses to move a checkpoint back: a second writer on the same slot shows up as an error, not a replay.
_WRITE = sa.text(
    "INSERT INTO strangler_cdc.checkpoints AS c (slot, lsn, commit_time) VALUES (:slot, CAST(:lsn AS pg_lsn), :t) "
    "ON CONFLICT (slot) DO UPDATE SET lsn = EXCLUDED.lsn, commit_time = EXCLUDED.commit_time, "
    "applied_at = clock_timestamp() WHERE c.lsn <= EXCLUDED.lsn"
)
_DESCRIBE = sa.text(
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, a.atthasdef "
    "FROM pg_attribute a WHERE a.attrelid = to_regclass(:name) AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY a.attnum"
)
COPY_THRESHOLD = 8  # below this many rows a pipelined INSERT beats setting up a COPY


def ensure_checkpoint_table(engine: sa.Engine) -> None:
    """Create the target's checkpoint table if it is missing."""
    with engine.begin() as conn:
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(AdvisoryLocks.REPLICATION_SCHEMA)))
        conn.exec_driver_sql(CHECKPOINT_DDL)


def read_checkpoint(conn: sa.Connection, slot: str) -> Checkpoint | None:
    """Return the committed checkpoint of `slot` in the target, or None."""
    if conn.execute(sa.text("SELECT to_regclass('strangler_cdc.checkpoints')")).scalar() is None:
        return None
    row = conn.execute(_READ, {"slot": slot}).first()
    return Checkpoint(slot, str_to_lsn(row[0]), row[1]) if row else None


class PostgresApplier(Applier):
    """Apply to a PostgreSQL target through one held connection; one target transaction per `commit`."""

    def __init__(self, engine: sa.Engine, run_rows: int = 20_000) -> None:
        """Hold one connection of `engine` (TimeZone should be UTC); buffered runs are flushed at `run_rows` rows."""
        ensure_checkpoint_table(engine)
        self._conn = engine.connect()
        self._raw: psycopg.Connection[Any] = self._conn.connection.driver_connection  # type: ignore[assignment]
        self._run_rows = run_rows
        self._run: tuple[str, TablePlan, tuple[bool, ...]] | None = None
        self._rows: list[Any] = []
        self._sql: dict[tuple[str, str, tuple[bool, ...]], str] = {}
        # Statement runs ride one pipeline until something needs an answer: no round trip per run.
        self._pipeline: contextlib.AbstractContextManager[Any] | None = None
        self._checks: list[tuple[psycopg.Cursor[Any], int, str, TablePlan]] = []

    # -- reads ------------------------------------------------------------------------------------------------------
    def checkpoint(self, slot: str) -> Checkpoint | None:
        self._flush()
        found = read_checkpoint(self._conn, slot)
        self._conn.rollback()
        return found

    def describe(self, schema: str, table: str) -> dict[str, TargetColumn] | None:
        name = f"{quote_ident(schema)}.{quote_ident(table)}"
        self._flush()
        if self._conn.execute(sa.text("SELECT to_regclass(:n)"), {"n": name}).scalar() is None:
            return None
        rows = self._conn.execute(_DESCRIBE, {"name": name}).all()
        return {r[0]: TargetColumn(r[0], r[1], r[2], r[3]) for r in rows}

    # -- writes -----------------------------------------------------------------------------------------------------
    def prepare(self, plan: TablePlan) -> None:
        self._flush()
        for statement in plan.ddl:
            self._conn.exec_driver_sql(statement)

    def insert(self, plan: TablePlan, new: TupleData) -> None:
        # Kept as decoded: a long run goes out as COPY text built from the wire bytes, a short one as statements.
        self._add("insert", plan, (), new)

    def update(self, plan: TablePlan, new: TupleData, old: TupleData | None) -> None:
        row, key = plan.row(new), plan.key_of(new if old is None else old)
        if plan.has_json:
            row, key = _json(plan.columns, row), _json(plan.key, key)
        mask = tuple(value is not UNCHANGED for value in row)
        self._add("update", plan, mask, (*(v for v in row if v is not UNCHANGED), *key))

    def delete(self, plan: TablePlan, old: TupleData) -> None:
        key = plan.key_of(old)
        self._add("delete", plan, (), _json(plan.key, key) if plan.has_json else key)

    def truncate(self, plans: Sequence[TablePlan]) -> None:
        self._flush()
        if plans:
            names = ", ".join(f"{quote_ident(p.target_schema)}.{quote_ident(p.target_table)}" for p in plans)
            self._conn.exec_driver_sql(f"TRUNCATE {names}")

    def copy_text(self, plan: TablePlan, blocks: Iterable[bytes]) -> None:
        self._flush()
        self._begin()
        with self._raw.cursor() as cur, cur.copy(self._copy_sql(plan), writer=QueuedLibpqWriter(cur)) as copy:
            for block in blocks:  # a writer thread sends while this one reads the next block from the source
                copy.write(block)

    def commit(self, checkpoint: Checkpoint) -> None:
        self._flush()
        self._sync()
        result = self._conn.execute(
            _WRITE, {"slot": checkpoint.slot, "lsn": lsn_to_str(checkpoint.lsn), "t": checkpoint.commit_time}
        )
        if result.rowcount != 1:
            self.rollback()
            raise ApplyError(f"checkpoint of slot {checkpoint.slot} moved past {lsn_to_str(checkpoint.lsn)} meanwhile")
        self._conn.commit()

    def rollback(self) -> None:
        self._run, self._rows, self._checks = None, [], []
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            with contextlib.suppress(psycopg.Error):
                pipeline.__exit__(None, None, None)
        self._conn.rollback()

    def close(self) -> None:
        with contextlib.suppress(sa.exc.SQLAlchemyError, psycopg.Error):
            self._conn.close()

    # -- runs -------------------------------------------------------------------------------------------------------
    def _begin(self) -> None:
        if not self._conn.in_transaction():
            self._conn.begin()

    def _add(self, kind: str, plan: TablePlan, mask: tuple[bool, ...], params: Sequence[Any]) -> None:
        run = (kind, plan, mask)
        if self._run != run or len(self._rows) >= self._run_rows:
            self._flush(answers=False)
            self._run = run
        self._rows.append(params)

    def _flush(self, answers: bool = True) -> None:
        """Write the buffered run; with `answers`, also wait for the pipeline (before reading or running DDL)."""
        if self._run is not None:
            (kind, plan, mask), rows = self._run, self._rows
            self._run, self._rows = None, []
            self._begin()
            if kind == "insert" and len(rows) >= COPY_THRESHOLD:
                self._sync()  # COPY cannot ride a pipeline
                self._copy_rows(plan, rows)
            else:
                self._pipelined(kind, plan, mask, rows)
        if answers:
            self._sync()

    def _copy_rows(self, plan: TablePlan, rows: list[Any]) -> None:
        line = plan.copy_line
        try:
            with self._raw.cursor() as cur, cur.copy(self._copy_sql(plan), writer=QueuedLibpqWriter(cur)) as copy:
                for start in range(0, len(rows), 1000):
                    copy.write(b"".join([line(new) for new in rows[start : start + 1000]]))
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            raise ApplyError(f"{plan.target}: the target refused an insert: {_first_line(exc)}") from None

    def _pipelined(self, kind: str, plan: TablePlan, mask: tuple[bool, ...], rows: list[Any]) -> None:
        if kind == "insert":
            rows = [_json(plan.columns, plan.row(new)) if plan.has_json else plan.row(new) for new in rows]
        if self._pipeline is None:
            self._pipeline = self._raw.pipeline()
            self._pipeline.__enter__()
        cur = self._raw.cursor()
        cur.executemany(self._statement(kind, plan, mask), rows)
        self._checks.append((cur, len(rows), kind, plan))

    def _sync(self) -> None:
        """Leave pipeline mode: wait for every queued statement, then check each found all its rows."""
        pipeline, checks = self._pipeline, self._checks
        if pipeline is None:
            return
        self._pipeline, self._checks = None, []
        failed: tuple[str, TablePlan] | None = None
        try:
            pipeline.__exit__(None, None, None)
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            failed = (_first_line(exc), checks[-1][3])
        if failed is not None:
            reason, plan = failed
            raise ApplyError(f"{plan.target}: the target refused a change: {reason}")
        for cur, expected, kind, plan in checks:
            if kind != "insert" and cur.rowcount != expected:
                raise ApplyError(
                    f"{plan.target}: {kind} found {expected - cur.rowcount} of {expected} rows missing "
                    "(the target is out of step with the source)"
                )

    def _copy_sql(self, plan: TablePlan) -> str:
        key = ("copy", plan.target, tuple(c.target for c in plan.columns))
        sql = self._sql.get(key)  # type: ignore[arg-type]
        if sql is None:
            cols = ", ".join(quote_ident(c.target) for c in plan.columns)
            sql = f"COPY {quote_ident(plan.target_schema)}.{quote_ident(plan.target_table)} ({cols}) FROM STDIN"
            self._sql[key] = sql  # type: ignore[index]
        return sql

    def _statement(self, kind: str, plan: TablePlan, mask: tuple[bool, ...]) -> str:
        cache_key = (kind, plan.target + "|" + ",".join(c.target for c in plan.columns), mask)
        sql = self._sql.get(cache_key)
        if sql is not None:
            return sql
        table = f"{quote_ident(plan.target_schema)}.{quote_ident(plan.target_table)}"
        if plan.keyed:
            where = " AND ".join(f"{quote_ident(c.target)} = %s" for c in plan.key)
        else:  # REPLICA IDENTITY FULL without a key: the old row is its identity; one of equal duplicates changes
            match = " AND ".join(f"{quote_ident(c.target)} IS NOT DISTINCT FROM %s" for c in plan.key)
            where = f"ctid = (SELECT ctid FROM {table} WHERE {match} LIMIT 1)"
        if kind == "insert":
            cols = ", ".join(quote_ident(c.target) for c in plan.columns)
            sql = f"INSERT INTO {table} ({cols}) VALUES ({', '.join(['%s'] * len(plan.columns))})"
        elif kind == "update":
            kept = [c for c, keep in zip(plan.columns, mask, strict=True) if keep]
            sets = ", ".join(f"{quote_ident(c.target)} = %s" for c in kept)
            sql = f"UPDATE {table} SET {sets} WHERE {where}"
        else:
            sql = f"DELETE FROM {table} WHERE {where}"
        self._sql[cache_key] = sql
        return sql


def _json(columns: Sequence[ColumnPlan], values: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(
        Jsonb(v) if c.is_json and v is not None and v is not UNCHANGED else v
        for c, v in zip(columns, values, strict=True)
    )


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
