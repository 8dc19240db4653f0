"""Lag awareness: a legacy WAL position to compare at, and waiting until the replicator has applied past it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg

from replication.pgoutput import lsn_to_str, str_to_lsn
from replication.source import HEARTBEAT_PREFIX

Conn = psycopg.Connection[Any]


class LagError(RuntimeError):
    """The replicator has not applied the legacy position in time (behind, or not running); says which."""


def insert_lsn(conn: Conn) -> int:
    """Return the legacy WAL insert position: every commit the caller's snapshot sees lies below it."""
    row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
    assert row is not None
    return str_to_lsn(row[0])


def nudge(conn: Conn) -> None:
    """Commit a heartbeat on the legacy side so the replicator's checkpoint moves past the position just taken.

    The checkpoint only advances at a replicated commit; on a quiet source the next one might be the replicator's
    own heartbeat seconds away. A role that may not emit messages just waits for that heartbeat instead.
    """
    try:
        with conn.transaction():
            conn.execute("SET LOCAL synchronous_commit = on")  # flushed now, so the stream sees it at once
            conn.execute("SELECT pg_logical_emit_message(true, %s, 'reconcile')", (HEARTBEAT_PREFIX,))
    except psycopg.errors.InsufficientPrivilege:
        pass


def applied_lsn(conn: Conn, slot: str) -> int | None:
    """Return the slot's applied checkpoint in the cloud store, or None when it has none."""
    if conn.execute("SELECT to_regclass('strangler_cdc.checkpoints')").fetchone() == (None,):
        return None
    row = conn.execute("SELECT lsn::text FROM strangler_cdc.checkpoints WHERE slot = %s", (slot,)).fetchone()
    return str_to_lsn(row[0]) if row else None


def wait_applied(
    conn: Conn,
    slot: str,
    goal: int,
    timeout_s: float,
    interval_s: float = 0.02,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Return the slot's applied LSN once it reaches `goal`; raise LagError naming the gap after `timeout_s`."""
    deadline = clock() + timeout_s
    while True:
        applied = applied_lsn(conn, slot)
        if applied is not None and applied >= goal:
            return applied
        if clock() >= deadline:
            if applied is None:
                raise LagError(
                    f"the cloud store has no checkpoint for slot {slot}: the replicator has never run for it "
                    "(start `strangler replicate run`, or pass --no-wait to compare without waiting)"
                )
            raise LagError(
                f"the replicator is behind or not running: slot {slot} has applied {lsn_to_str(applied)}, "
                f"{goal - applied:,} bytes short of the legacy position {lsn_to_str(goal)} after {timeout_s:g}s "
                "(check `strangler replicate status`, or pass --no-wait)"
            )
        sleep(interval_s)
