"""Helpers for replication integration tests: seeded databases, replicators in a thread or a process, comparisons."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from core.procs import wait_until
from replication.config import MappingConfig, load_mapping
from replication.pgoutput import str_to_lsn
from replication.plan import TablePlan, plan_table, quote_ident
from replication.replicator import Options, Replicator
from replication.source import SESSION_OPTIONS, Conninfo, table_facts
from sandbox.cloud.schema import init_db as init_cloud
from sandbox.legacy.schema import init_db as init_legacy

REPO = Path(__file__).resolve().parents[2]
ACTIVE = "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s AND active"


@dataclass
class Pair:
    """A legacy (source) and a cloud (target) database, as SQLAlchemy URLs and libpq connection info."""

    source_url: str
    target_url: str
    mapping: MappingConfig = field(default_factory=load_mapping)

    @property
    def slot(self) -> str:
        """Slots are per cluster: each pair gets its own, named after its source database."""
        return f"s_{self.source.dbname}"

    @property
    def source(self) -> Conninfo:
        return Conninfo.from_url(self.source_url)

    @property
    def target(self) -> Conninfo:
        return Conninfo.from_url(self.target_url)

    def connect(self, side: str) -> psycopg.Connection[Any]:
        """An autocommit connection to one side whose commits are flushed at once (the stream sees them promptly)."""
        info = self.source if side == "source" else self.target
        conn = psycopg.connect(**info.kwargs(options=SESSION_OPTIONS), autocommit=True)
        conn.execute("SET synchronous_commit = on")
        return conn

    def sql(self, side: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.connect(side) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def options(self, **overrides: Any) -> Options:
        base: dict[str, Any] = {"source": self.source, "target": self.target, "mapping": self.mapping,
                                "slot": self.slot, "publication": "p_test", "heartbeat_s": 0.5,
                                "slot_wait_s": 5.0}  # fmt: skip
        return Options(**{**base, **overrides})

    def applied_lsn(self, slot: str | None = None) -> int:
        rows = self.sql("target", "SELECT to_regclass('strangler_cdc.checkpoints')")
        if rows[0][0] is None:
            return 0
        found = self.sql(
            "target", "SELECT lsn::text FROM strangler_cdc.checkpoints WHERE slot = %s", (slot or self.slot,)
        )
        return str_to_lsn(found[0][0]) if found else 0

    def wait_caught_up(self, timeout: float = 60.0, alive: Callable[[], object] = lambda: None) -> None:
        """Wait until the target's checkpoint passes the source's WAL position as of now (`alive` may raise)."""
        goal = str_to_lsn(self.sql("source", "SELECT pg_current_wal_lsn()::text")[0][0])

        def done() -> bool:
            alive()
            return self.applied_lsn() >= goal

        wait_until(done, timeout, 0.05, f"slot {self.slot} to apply up to {goal:X}")

    def drop_slot(self) -> None:
        """Drop the pair's slot (once no replicator uses it) so the shared cluster keeps no WAL for it."""
        wait_until(lambda: not self.sql("source", ACTIVE, (self.slot,)), 15, what=f"slot {self.slot} to be released")
        self.sql("source", "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                 (self.slot,))  # fmt: skip


def seed_sandbox(pair: Pair, customers: int) -> Pair:
    """Give the pair a legacy core with `customers` customers and an empty cloud store (CDC fills it)."""
    init_legacy(pair.source_url, customers)
    init_cloud(pair.target_url, 0)
    return pair


def plans(pair: Pair) -> list[TablePlan]:
    """Plan every mapped table from the source catalog against the target as it is now."""
    out = []
    with pair.connect("source") as conn:
        for name, table in pair.mapping.tables.items():
            facts = table_facts(conn, name)
            assert facts is not None, name
            out.append(plan_table(table, facts.relation(), facts.facts(), {}))
    return out


def assert_target_equals_source(pair: Pair) -> dict[str, int]:
    """Compare every mapped table row for row (the source side transformed by the mapping's SQL); return counts."""
    counts = {}
    for plan in plans(pair):
        schema, table = plan.source.split(".", 1)
        order = ", ".join(str(i + 1) for i, c in enumerate(plan.columns) if c in plan.key)
        cols = ", ".join(quote_ident(c.target) for c in plan.columns)
        source_rows = pair.sql("source", f"SELECT {plan.select_sql} FROM {schema}.{table} ORDER BY {order}")
        target_rows = pair.sql("target", f"SELECT {cols} FROM {plan.target} ORDER BY {order}")
        assert len(source_rows) == len(target_rows), plan.target
        for expected, got in zip(source_rows, target_rows, strict=True):
            assert expected == got, plan.target
        counts[plan.target] = len(target_rows)
    return counts


class ThreadedReplicator:
    """A Replicator running in a thread of the test process; `stop()` returns once it has finished."""

    def __init__(self, options: Options, **kwargs: Any) -> None:
        self.replicator = Replicator(options, **kwargs)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.replicator.run()
        except BaseException as exc:
            self.error = exc

    def alive(self) -> None:
        """Raise the replicator's error if it has stopped with one."""
        if self.error is not None:
            raise self.error

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        """Wait for `predicate`, failing at once with the replicator's own error if it stops."""

        def check() -> bool:
            self.alive()
            return predicate()

        wait_until(check, timeout, 0.05, what)

    def stop(self) -> None:
        self.replicator.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error

    def wait_failed(self, timeout: float = 30.0) -> BaseException:
        self.thread.join(timeout)
        assert self.error is not None, "the replicator did not stop with an error"
        return self.error


class ReplicatorProcess:
    """`python -m cli.replicate run ...` in its own process group, logging to a file."""

    def __init__(self, pair: Pair, log_path: Path, *extra: str) -> None:
        self.log_path = log_path
        argv = [sys.executable, "-m", "cli.replicate", "run", "--source-url", pair.source_url,
                "--target-url", pair.target_url, "--slot", pair.slot, "--publication", "p_test",
                "--progress", "plain", "--heartbeat-interval", "0.5", "--slot-wait", "10", *extra]  # fmt: skip
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 30.0) -> None:
        wait_until(lambda: re.search(pattern, self.log()) is not None or self.proc.poll() is not None, timeout,
                   what=f"log line {pattern!r}")  # fmt: skip
        assert re.search(pattern, self.log()), self.log()[-3000:]

    def kill(self) -> None:
        """SIGKILL the process group: a crash at whatever point it is."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait for the exit code; a process that does not stop in 30 s is killed (and fails the test)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
