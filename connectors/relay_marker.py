"""The relay's batches in flight and the marker thread that records each acknowledged batch, in send order."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from confluent_kafka import KafkaError, Message, Producer

if TYPE_CHECKING:
    from connectors.relay import OutboxRelay

log = logging.getLogger("strangler.relay")


@dataclass
class Batch:
    """Rows (id, txid, topic, key, value) sent together, in position order; delivery reports fill `reports`."""

    rows: Sequence[Any]
    started: float
    reports: list[KafkaError | None] = field(default_factory=list)
    error: KafkaError | None = None  # the first failed delivery report
    abandoned: bool = False  # not all of it could be produced: no point waiting for its reports

    def report(self, err: KafkaError | None, msg: Message) -> None:
        """Note one delivery report (the producer's on_delivery): an append, and the error kept on failure."""
        if err is not None and self.error is None:
            self.error = err
        self.reports.append(err)  # list.append is atomic: reports may be served by the sender's or the marker's poll

    def wait(self, producer: Producer | None, clock: Callable[[], float], quiet_s: float) -> None:
        """Serve delivery reports until the batch has all of its own, or none came for `quiet_s` seconds.

        The wait ends when the broker stops answering, not when it is slow: a new producer's first reports come only
        after its producer id and the topic's metadata, and a loaded broker may take long over a large batch.
        """
        quiet_until = clock() + quiet_s
        while producer is not None and not self.complete and not self.abandoned:
            seen = len(self.reports)
            producer.poll(0.05)
            now = clock()
            if len(self.reports) > seen:
                quiet_until = now + quiet_s
            elif now >= quiet_until:
                return

    @property
    def complete(self) -> bool:
        return len(self.reports) >= len(self.rows)

    @property
    def position(self) -> tuple[int, int]:
        """The (txid, id) of the batch's last row: where the relay has published up to once the batch is."""
        row_id, txid = self.rows[-1][0], self.rows[-1][1]
        return int(txid), int(row_id)

    def acknowledged(self) -> bool:
        """Return whether Kafka acknowledged every row of the batch (a batch is published whole or not at all)."""
        if self.complete and self.error is None:
            return True
        why = self.error.str() if self.error is not None else "no delivery report in time"
        log.warning("%d rows not acknowledged (%s); they go out again from the last position", len(self.rows), why)
        return False


@dataclass
class PassResult:
    """What one pass over the outbox did: rows read, rows marked published, and whether the broker let us down."""

    read: int = 0
    marked: int = 0
    failed: bool = False


class Marker(threading.Thread):
    """Serves delivery reports and records each acknowledged batch, in the order the batches were sent.

    After the first batch that is not acknowledged nothing more is recorded in the pass: the position never passes a
    row Kafka does not hold, and the next pass sends everything after it again.
    """

    def __init__(self, relay: OutboxRelay, batches: queue.Queue[Batch | None]) -> None:
        super().__init__(name="relay-marker", daemon=True)
        self.relay, self.batches = relay, batches
        self.marked = 0
        self.failed = False
        self.error: BaseException | None = None

    def run(self) -> None:
        relay = self.relay
        conn: sa.Connection | None = None
        try:
            conn = relay._connect()
            while (batch := self.batches.get()) is not None:
                batch.wait(relay._producer, relay.clock, relay.flush_timeout_s)
                if self.failed or not batch.acknowledged():
                    self.failed = True
                    relay._unacknowledged(batch)
                    continue
                relay._mark(conn, batch)
                self.marked += len(batch.rows)
        except BaseException as exc:  # handed to the pass, which raises it in the relay's thread
            self.error = exc
            if conn is not None:
                conn.invalidate()
            while self.batches.get() is not None:
                pass  # keep taking batches so the sender never blocks on a full queue
        finally:
            if conn is not None:
                conn.close()
