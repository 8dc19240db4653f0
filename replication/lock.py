"""One active replicator per slot: a session advisory lock in the target; standbys wait on it and take over."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from core.db import AdvisoryLocks
from replication.source import Conninfo

log = logging.getLogger("strangler.replication")
LOCK_CLASS = (
    AdvisoryLocks.REPLICATOR_CLASS
)  # the first half of the two-part advisory lock key; the second is the slot's CRC32


class LockLost(RuntimeError):
    """The connection holding the slot lock is gone; another replicator may be active by now."""


class SlotLock:
    """The advisory lock that makes one replicator of a slot active; held as long as its connection lives."""

    def __init__(self, target: Conninfo, slot: str, poll_s: float = 0.25) -> None:
        self.target, self.slot, self.poll_s = target, slot, poll_s
        self.key = AdvisoryLocks.key_of(slot)
        self._conn: psycopg.Connection[Any] | None = None

    def acquire(self, stop: threading.Event, on_standby: Callable[[], None] = lambda: None) -> bool:
        """Wait until the lock is ours (True) or `stop` is set (False); calls `on_standby` once if another holds it."""
        waited, unreachable = False, False
        while not stop.is_set():
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(
                        **self.target.kwargs(application_name=f"strangler-replicate-lock:{self.slot}"),
                        autocommit=True, connect_timeout=10,
                    )  # fmt: skip
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, self.key)).fetchone()
                if row and row[0]:
                    return True
                if not waited:
                    waited = True
                    on_standby()
            except psycopg.OperationalError as exc:
                self.release()
                if not unreachable:
                    unreachable = True
                    log.warning("cannot reach the target to take the lock of slot %s (%s); retrying",
                                self.slot, str(exc).strip().splitlines()[0])  # fmt: skip
            stop.wait(self.poll_s)
        return False

    def check(self) -> None:
        """Raise LockLost unless the lock's connection still answers."""
        try:
            if self._conn is None:
                raise LockLost(f"slot {self.slot}: the lock is not held")
            self._conn.execute("SELECT 1")
        except psycopg.Error:
            self.release()
            raise LockLost(f"slot {self.slot}: lost the connection that held the lock") from None

    def release(self) -> None:
        """Close the lock's connection, which releases the lock."""
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
