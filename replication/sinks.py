"""What the replicator tells its observers (progress, status, metrics, change events), and its counters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from replication.plan import TablePlan
from replication.stream import TxBegin


class SinkUnavailable(RuntimeError):
    """A sink could not take a batch (a broker is down): the batch is not committed and is streamed again."""


@dataclass
class Stats:
    """Running counters of one replicator process."""

    applied_txs: int = 0
    applied_changes: int = 0
    batches: int = 0
    skipped_txs: int = 0
    heartbeats: int = 0
    reconnects: int = 0
    applied_lsn: int = 0
    source_lsn: int = 0
    last_commit_time: datetime | None = None
    caught_up: bool = False
    retained_wal_bytes: int = 0
    received_lsn: int = 0  # how far the server has read for this slot (its keepalives say so)

    def lag_seconds(self, now: datetime | None = None) -> float:
        """Seconds between now and the last applied source commit; 0 when nothing is waiting to be applied."""
        if self.caught_up or self.last_commit_time is None:
            return 0.0
        return max(0.0, ((now or datetime.now(UTC)) - self.last_commit_time).total_seconds())

    @property
    def lag_bytes(self) -> int:
        """Source WAL not yet applied; when caught up, what the server has read past holds nothing to apply."""
        done = max(self.applied_lsn, self.received_lsn) if self.caught_up else self.applied_lsn
        return max(0, self.source_lsn - done)


class Sink:
    """An observer of the replicator; every hook does nothing unless overridden. Hooks must not raise for I/O."""

    wants_changes = False  # True: `change` receives every row change (costs a little per row)

    def standby(self, slot: str) -> None:
        """Another replicator holds the slot; this one waits."""

    def active(self, slot: str) -> None:
        """This replicator holds the slot lock now."""

    def begin(self, tx: TxBegin) -> None:
        """A source transaction starts."""

    def change(
        self,
        plan: TablePlan,
        op: str,
        before: Sequence[Any] | None,
        after: Sequence[Any] | None,
        key: Sequence[Any],
        lsn: int,
    ) -> None:
        """One row change (op c, u or d) in target terms, before it is committed (only when `wants_changes`)."""

    def truncated(self, plans: Sequence[TablePlan]) -> None:
        """Target tables are emptied in the open batch."""

    def before_commit(self) -> None:
        """The batch is about to be committed (flush anything that must be durable first); may raise to abort it."""

    def committed(self, txs: int, changes: int) -> None:
        """A batch of `txs` source transactions with `changes` row changes is committed and confirmed."""

    def tick(self, stats: Stats) -> None:
        """About once per status interval, with a copy of the counters."""

    def close(self) -> None:
        """The replicator stops."""


class FanOut(Sink):
    """Pass every hook on to several sinks, in order."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)
        self.wants_changes = any(s.wants_changes for s in sinks)
        self._changes = [s for s in sinks if s.wants_changes]

    def standby(self, slot: str) -> None:
        for s in self.sinks:
            s.standby(slot)

    def active(self, slot: str) -> None:
        for s in self.sinks:
            s.active(slot)

    def begin(self, tx: TxBegin) -> None:
        for s in self.sinks:
            s.begin(tx)

    def change(
        self,
        plan: TablePlan,
        op: str,
        before: Sequence[Any] | None,
        after: Sequence[Any] | None,
        key: Sequence[Any],
        lsn: int,
    ) -> None:
        for s in self._changes:
            s.change(plan, op, before, after, key, lsn)

    def truncated(self, plans: Sequence[TablePlan]) -> None:
        for s in self.sinks:
            s.truncated(plans)

    def before_commit(self) -> None:
        for s in self.sinks:
            s.before_commit()

    def committed(self, txs: int, changes: int) -> None:
        for s in self.sinks:
            s.committed(txs, changes)

    def tick(self, stats: Stats) -> None:
        for s in self.sinks:
            s.tick(stats)

    def close(self) -> None:
        for s in self.sinks:
            s.close()
