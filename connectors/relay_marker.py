"""The relay's batches in flight and the marker thread that marks each one's acknowledged rows, in send order."""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from confluent_kafka import KafkaError, Message

if TYPE_CHECKING:
    from connectors.relay import OutboxRelay

log = logging.getLogger("strangler.relay")

MARK_SESSIONS = 2  # marks of consecutive batches run side by side: the database, not Python, is their limit


@dataclass
class Batch:
    """Rows sent together; delivery reports fill `reports` (one per message) and `failed` ((topic, key) → error)."""

    rows: Sequence[Any]
    deadline: float
    started: float
    ids: list[int] = field(default_factory=list)  # the rows' outbox ids, in order
    reports: list[KafkaError | None] = field(default_factory=list)
    failed: dict[tuple[str, str], KafkaError] = field(default_factory=dict)

    def report(self, err: KafkaError | None, msg: Message) -> None:
        """Note one delivery report (the producer's on_delivery): cheap on success, the record's key kept on failure."""
        if err is not None:
            # Matched by key, not by a per-record header (which cost the producer ~1.5 µs a record): every row of the
            # key in this batch goes out again, after which the applier's dedup drops what had arrived.
            key = msg.key()
            self.failed[(msg.topic() or "", key.decode() if isinstance(key, bytes) else str(key))] = err
        self.reports.append(err)  # list.append is atomic: reports may be served by the sender's or the marker's poll

    @property
    def complete(self) -> bool:
        return len(self.reports) >= len(self.rows)

    def acknowledged(self, blocked: set[tuple[str, str]]) -> tuple[list[int], bool]:
        """Return the rows safe to mark and whether any was not; a key with an unacknowledged row stays `blocked`.

        A row is safe once every report of the batch arrived and none failed for its key; a batch whose reports did
        not all arrive in time marks nothing, so all of it goes out again.
        """
        complete, failed = self.complete, self.failed
        if not blocked and complete and not failed:
            return self.ids, False
        safe = []
        for row_id, topic, key, _value in self.rows:
            # Every row of a key with a failed row waits (and the key's later batches), so order holds on the retry.
            if complete and (topic, key) not in failed and (topic, key) not in blocked:
                safe.append(row_id)
            else:
                blocked.add((topic, key))
        if len(safe) < len(self.rows):
            first = next(iter(failed.values()), None)
            log.warning(
                "%d of %d rows not acknowledged (%s); they stay for the next round", len(self.rows) - len(safe),
                len(self.rows), first.str() if first else "no delivery report in time",
            )  # fmt: skip
        return safe, len(safe) < len(self.rows)


@dataclass
class PassResult:
    """What one pass over the outbox did: rows read, rows marked published, and whether the broker let us down."""

    read: int = 0
    marked: int = 0
    failed: bool = False


class Marker(threading.Thread):
    """Serves delivery reports and marks each batch's acknowledged rows, in the order the batches were sent."""

    def __init__(self, relay: OutboxRelay, batches: queue.Queue[Batch | None]) -> None:
        super().__init__(name="relay-marker", daemon=True)
        self.relay, self.batches = relay, batches
        self.marked = 0
        self.failed = False
        self.error: BaseException | None = None

    def run(self) -> None:
        relay = self.relay
        blocked: set[tuple[str, str]] = set()
        conns: list[sa.Connection] = []
        # Marks run in the database (on MARK_SESSIONS sessions) while the next batches' delivery reports are served;
        # each batch's rows are decided here, in order, so a key blocked by a failed row stays blocked.
        marking = ThreadPoolExecutor(MARK_SESSIONS, thread_name_prefix="relay-mark")
        running: deque[Future[int]] = deque()
        try:
            for _ in range(MARK_SESSIONS):
                conns.append(conn := relay._connect())
                # The mark touches rows only by primary key; never let the planner pick a scan of the whole table.
                conn.exec_driver_sql("SET enable_seqscan = off")
            turn = 0
            while (batch := self.batches.get()) is not None:
                producer = relay._producer
                while producer is not None and not batch.complete and relay.clock() < batch.deadline:
                    producer.poll(0.05)
                ids, failed = batch.acknowledged(blocked)
                self.failed |= failed
                if len(running) >= MARK_SESSIONS:
                    self.marked += running.popleft().result()
                running.append(marking.submit(self._mark, conns[turn], batch, ids))
                turn = (turn + 1) % MARK_SESSIONS
            while running:
                self.marked += running.popleft().result()
            for conn in conns:
                conn.exec_driver_sql("RESET enable_seqscan")
        except BaseException as exc:  # handed to the pass, which raises it in the relay's thread
            self.error = exc
            marking.shutdown(wait=True)  # no mark may still run on a session about to be dropped
            for conn in conns:
                conn.invalidate()
            while self.batches.get() is not None:
                pass  # keep taking batches so the sender never blocks on a full queue
        finally:
            marking.shutdown(wait=True)  # no mark may still run on a connection going back to the pool
            for conn in conns:
                conn.close()

    def _mark(self, conn: sa.Connection, batch: Batch, ids: list[int]) -> int:
        self.relay._mark(conn, batch, ids)
        return len(ids)
