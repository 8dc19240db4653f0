"""A batch of outbox rows in the relay's producer, and whether Kafka acknowledged all of it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, Message

log = logging.getLogger("strangler.relay")


class Drains(Protocol):
    """What a batch's wait needs of the producer: its queue length, and a bounded flush that serves reports."""

    def __len__(self) -> int: ...

    def flush(self, timeout: float) -> int: ...


@dataclass
class Batch:
    """Rows (id, txid, topic, key, value) sent together, in position order, into a producer that holds nothing else.

    The producer reports failed deliveries only (`delivery.report.only.error`): a message leaves its queue when the
    broker acknowledged it or when its failure was reported. So the batch is acknowledged once the queue is empty and
    no failure was reported, with no callback per row.
    """

    rows: Sequence[Any]
    started: float
    error: KafkaError | None = None  # the first failed delivery report
    drained: bool = False  # the producer's queue emptied: every row acknowledged or reported failed
    abandoned: bool = False  # not all of it could be produced: no point waiting for it

    def report(self, err: KafkaError | None, msg: Message) -> None:
        """Note one delivery report (the producer's on_delivery, called for failures only): keep the first error."""
        if err is not None and self.error is None:
            self.error = err

    def wait(self, producer: Drains | None, clock: Callable[[], float], quiet_s: float) -> None:
        """Serve delivery reports until the producer's queue is empty, or it did not shrink for `quiet_s` seconds.

        The wait ends when the broker stops answering, not when it is slow: a new producer's first acknowledgements
        come only after its producer id and the topic's metadata, and a loaded broker may take long over a large batch.
        """
        if producer is None or self.abandoned:
            return
        left, quiet_until = len(producer), clock() + quiet_s
        while (now_left := producer.flush(0.05)) > 0:
            now = clock()
            if now_left < left:
                left, quiet_until = now_left, now + quiet_s
            elif now >= quiet_until:
                return
        self.drained = True

    @property
    def position(self) -> tuple[int, int]:
        """The (txid, id) of the batch's last row: where the relay has published up to once the batch is."""
        row_id, txid = self.rows[-1][0], self.rows[-1][1]
        return int(txid), int(row_id)

    def acknowledged(self) -> bool:
        """Return whether Kafka acknowledged every row of the batch (a batch is published whole or not at all)."""
        if self.drained and self.error is None and not self.abandoned:
            return True
        if self.error is not None:
            why = self.error.str()
        else:
            why = "not all of it could be produced" if self.abandoned else "not acknowledged in time"
        log.warning("%d rows not acknowledged (%s); they go out again from the last position", len(self.rows), why)
        return False


@dataclass
class PassResult:
    """What one pass over the outbox did: rows read, rows marked published, and whether the broker let us down."""

    read: int = 0
    marked: int = 0
    failed: bool = False
