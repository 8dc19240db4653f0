"""The replicator: hold the slot lock, start or resume the stream, apply in batches, confirm only after commit.

Source transactions are applied in order into one open target transaction; at a source commit boundary the
batch is committed together with the checkpoint (when the stream goes quiet, or the batch is big or old enough),
and only then is the LSN confirmed to the server. Connection losses end the session; the next session resumes
from the target's checkpoint, so nothing is applied twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
import sqlalchemy as sa

from replication.applier import Applier, Checkpoint
from replication.config import MappingConfig
from replication.lock import LockLost, SlotLock
from replication.pg_applier import PostgresApplier
from replication.pgoutput import Message, Relation, decode
from replication.plan import SourceFacts, TablePlan
from replication.planner import Planner
from replication.sinks import Sink, SinkUnavailable, Stats
from replication.snapshot import SnapshotProgress
from replication.source import (
    HEARTBEAT_PREFIX,
    Conninfo,
    Unreachable,
    check_source,
    connect,
    emit_heartbeat,
    ensure_publication,
    table_facts,
    type_sql,
    wal_position,
)
from replication.startup import start_position, wait_for_free_slot
from replication.stream import RowChange, SchemaSeen, TransactionStream, TruncateTables, TxBegin, TxCommit, TxSkipped
from replication.wal import SlotStream, StreamLost

log = logging.getLogger("strangler.replication")
TRANSIENT: tuple[type[BaseException], ...] = (
    psycopg.OperationalError, sa.exc.OperationalError, sa.exc.InterfaceError, LockLost, Unreachable, StreamLost,
    SinkUnavailable,
)  # fmt: skip


@dataclass(frozen=True)
class Options:
    """Everything one replicator needs; the CLI builds it from flags and STRANGLER_* variables."""

    source: Conninfo
    target: Conninfo
    mapping: MappingConfig
    slot: str
    publication: str
    snapshot: str = "initial"  # initial | never | when_needed
    heartbeat_s: float = 5.0
    status_s: float = 1.0
    batch_changes: int = 20_000
    batch_s: float = 0.05
    slot_wait_s: float = 10.0
    retry_max_s: float = 5.0
    application_name: str = "strangler-replicate"


@dataclass
class _Batch:
    started: float = 0.0
    txs: int = 0
    changes: int = 0
    last: TxCommit | None = None


@dataclass
class Replicator:
    """Run one slot's replication until `stop()`; fatal problems raise SetupError, IncompatibleChange or ApplyError."""

    options: Options
    sink: Sink = field(default_factory=Sink)
    snapshot_progress: SnapshotProgress | None = None
    make_applier: Callable[[Conninfo], Applier] | None = None
    clock: Callable[[], float] = time.monotonic
    stats: Stats = field(default_factory=Stats)
    _stop: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        """Ask the loop to finish: complete transactions are committed, the rest is left to the next run."""
        self._stop.set()

    def run(self) -> None:
        """Check the source, wait for the slot lock, then stream; reconnect on outages until stopped."""
        opts = self.options
        with connect(opts.source, opts.application_name) as conn:
            facts = check_source(conn, opts.mapping)
            ensure_publication(conn, opts.publication, list(opts.mapping.tables.values()))
        lock = SlotLock(opts.target, opts.slot)
        first, delay = True, 0.2
        try:
            while not self._stop.is_set():
                if not lock.acquire(self._stop, lambda: self.sink.standby(opts.slot)):
                    return
                self.sink.active(opts.slot)
                applied = self.stats.applied_txs
                try:
                    self._session(lock, facts)
                    return
                except TRANSIENT as exc:
                    if first and isinstance(exc, Unreachable):
                        raise
                    log.warning("replication interrupted (%s); resuming from the checkpoint", _short(exc))
                    self.stats.reconnects += 1
                    # Back off while sessions fail at once; a session that applied something starts the count over.
                    delay = 0.2 if self.stats.applied_txs > applied else min(opts.retry_max_s, delay * 2)
                    self._stop.wait(delay)
                finally:
                    first = False
        finally:
            lock.release()

    def _session(self, lock: SlotLock, facts: Any) -> None:
        opts = self.options
        applier = self.make_applier(opts.target) if self.make_applier else _postgres_applier(opts.target)
        conn = connect(opts.source, opts.application_name)
        wal: SlotStream | None = None
        try:
            info = wait_for_free_slot(conn, opts.slot, opts.slot_wait_s, self._stop)
            wal = SlotStream(opts.source, opts.slot, opts.publication, opts.application_name)
            start = start_position(
                conn, wal, applier, opts.source, opts.mapping, facts, opts.snapshot, info, self.snapshot_progress
            )
            cp = applier.checkpoint(opts.slot)
            self.stats.applied_lsn, self.stats.last_commit_time = start, cp.commit_time if cp else None
            wal.start(start)
            self._stream(lock, conn, wal, applier, start)
        finally:
            if wal is not None:
                wal.close()
            applier.close()
            conn.close()

    def _stream(
        self, lock: SlotLock, conn: psycopg.Connection[Any], wal: SlotStream, applier: Applier, start: int
    ) -> None:
        opts, stats, clock = self.options, self.stats, self.clock
        txs = TransactionStream(start)
        types: dict[tuple[int, int], str] = {}

        def facts(relation: Relation) -> SourceFacts:
            pairs = [(c.type_oid, c.type_modifier) for c in relation.columns]
            types.update(type_sql(conn, [p for p in pairs if p not in types]))
            catalog = table_facts(conn, relation.qualified_name)
            flagged = tuple(c.name for c in relation.columns if c.is_key)
            key = (catalog.key if catalog else ()) if relation.replica_identity == "f" else flagged
            names = {c.name: types[p] for c, p in zip(relation.columns, pairs, strict=True)}
            return SourceFacts(names, key, catalog.defaults if catalog else {})

        planner = Planner(opts.mapping, facts, applier, txs.type_names)
        batch = _Batch()
        next_tick = clock()
        last_heartbeat = clock() - opts.heartbeat_s  # the first tick sends one: a fresh slot advances at once
        caught_up = False
        while not self._stop.is_set():
            msg = wal.read()
            now = clock()
            if msg is not None:
                caught_up = False
                event = txs.feed(decode(msg.payload))
                if isinstance(event, RowChange):
                    plan = planner.plan_for(event.relation)
                    if plan is not None:
                        self._apply(applier, plan, event, msg.data_start, batch)
                elif isinstance(event, TxCommit):
                    batch.txs += 1
                    batch.last = event
                    if batch.changes >= opts.batch_changes or now - batch.started >= opts.batch_s:
                        self._commit(applier, wal, batch)
                elif isinstance(event, TxBegin):
                    if batch.last is not None and now - batch.started >= opts.batch_s:
                        self._commit(applier, wal, batch)  # do not hold finished work behind a long transaction
                    if batch.txs == 0 and batch.changes == 0:
                        batch.started = now
                    if self.sink.wants_changes:
                        self.sink.begin(event)
                elif isinstance(event, SchemaSeen):
                    planner.plan_for(event.relation)
                elif isinstance(event, TruncateTables):
                    plans = [p for p in (planner.plan_for(r) for r in event.relations) if p is not None]
                    applier.truncate(plans)
                    self.sink.truncated(plans)
                    batch.changes += 1
                elif isinstance(event, TxSkipped):
                    stats.skipped_txs += 1
                elif isinstance(event, Message) and event.prefix == HEARTBEAT_PREFIX:
                    stats.heartbeats += 1
            else:
                if batch.last is not None and not txs.in_transaction:
                    self._commit(applier, wal, batch)
                caught_up = not txs.in_transaction
                wal.wait(max(0.0, min(0.5, next_tick - now)))
            if now >= next_tick:
                next_tick = now + opts.status_s
                lock.check()
                if now - last_heartbeat >= opts.heartbeat_s:
                    last_heartbeat = now
                    emit_heartbeat(conn)
                stats.source_lsn, stats.retained_wal_bytes = wal_position(conn, opts.slot)
                stats.caught_up = caught_up and batch.last is None
                stats.received_lsn = wal.wal_end
                self.sink.tick(replace(stats))
        if batch.last is not None and not txs.in_transaction:
            self._commit(applier, wal, batch)
        applier.rollback()

    def _apply(self, applier: Applier, plan: TablePlan, event: RowChange, lsn: int, batch: _Batch) -> None:
        batch.changes += 1
        new, old = event.new, event.old
        if event.op == "insert":
            applier.insert(plan, new)  # type: ignore[arg-type]
        elif event.op == "update":
            applier.update(plan, new, old)  # type: ignore[arg-type]
        else:
            applier.delete(plan, old)  # type: ignore[arg-type]
        if self.sink.wants_changes:
            key = plan.key_of(old if old is not None else new)  # type: ignore[arg-type]
            before = plan.row(old) if event.old_is_full_row and old is not None else None
            after = plan.row(new) if new is not None else None
            self.sink.change(plan, "c" if event.op == "insert" else event.op[0], before, after, key, lsn)

    def _commit(self, applier: Applier, wal: SlotStream, batch: _Batch) -> None:
        last = batch.last
        assert last is not None
        self.sink.before_commit()
        applier.commit(Checkpoint(self.options.slot, last.end_lsn, last.commit_time))
        wal.confirm(last.end_lsn)
        stats = self.stats
        stats.applied_txs += batch.txs
        stats.applied_changes += batch.changes
        stats.batches += 1
        stats.applied_lsn, stats.last_commit_time = last.end_lsn, last.commit_time
        self.sink.committed(batch.txs, batch.changes)
        batch.txs, batch.changes, batch.last = 0, 0, None
        batch.started = self.clock()


def _postgres_applier(target: Conninfo) -> Applier:
    engine = sa.create_engine(
        target.sqlalchemy_url(),
        poolclass=sa.pool.NullPool,
        connect_args={"options": "-c TimeZone=UTC", "application_name": "strangler-replicate-apply"},
    )
    return PostgresApplier(engine)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
