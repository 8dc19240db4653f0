"""Whether a sent batch counts as published, and up to which position, from the producer's queue and its failure
reports alone (no broker)."""

from __future__ import annotations

from confluent_kafka import KafkaError

from connectors.relay_batch import Batch

ROWS = [(1, 700, "t", "a", b""), (2, 700, "t", "b", b""), (3, 701, "t", "a", b""), (4, 702, "t", "c", b"")]
TIMED_OUT = KafkaError(KafkaError._MSG_TIMED_OUT)


class SlowBroker:
    """A producer queue holding the batch whose flush advances a fake clock, and takes one row off every `every_s`
    (acknowledged, or failed with a report for the rows in `failing`), until `answers` rows have gone."""

    def __init__(self, batch: Batch, every_s: float, answers: int, failing: frozenset[int] = frozenset()) -> None:
        self.batch, self.every_s, self.answers, self.failing = batch, every_s, answers, failing
        self.queue = [row[0] for row in batch.rows]
        self.now, self.next_at = 0.0, every_s

    def clock(self) -> float:
        return self.now

    def __len__(self) -> int:
        return len(self.queue)

    def flush(self, timeout: float) -> int:
        self.now += timeout
        if self.now >= self.next_at and len(ROWS) - len(self.queue) < self.answers:
            row_id = self.queue.pop(0)
            if row_id in self.failing:
                self.batch.report(TIMED_OUT, None)  # type: ignore[arg-type]
            self.next_at += self.every_s
        return len(self.queue)


def waited(every_s: float = 0.1, answers: int = len(ROWS), failing: frozenset[int] = frozenset()) -> SlowBroker:
    batch = Batch(ROWS, started=0.0)
    broker = SlowBroker(batch, every_s, answers, failing)
    batch.wait(broker, broker.clock, quiet_s=1.0)
    return broker


def test_a_batch_the_producer_drained_without_a_failure_is_published_up_to_its_last_rows_position() -> None:
    batch = waited().batch
    assert batch.drained and batch.acknowledged()
    assert batch.position == (702, 4)


def test_one_failed_row_fails_the_whole_batch_and_keeps_the_error() -> None:
    batch = waited(failing=frozenset({2})).batch
    assert batch.drained and not batch.acknowledged()
    assert batch.error is not None and batch.error.code() == KafkaError._MSG_TIMED_OUT


def test_a_batch_not_all_produced_is_not_acknowledged_and_not_waited_for() -> None:
    batch = Batch(ROWS, started=0.0, abandoned=True)
    broker = SlowBroker(batch, every_s=0.1, answers=len(ROWS))
    batch.wait(broker, broker.clock, quiet_s=1.0)
    assert broker.now == 0.0 and not batch.acknowledged()


def test_a_slow_broker_that_keeps_answering_gets_the_whole_batch_acknowledged() -> None:
    broker = waited(every_s=0.8)
    assert broker.batch.acknowledged()
    assert broker.now > 3.0  # well past one quiet period from the start: only silence ends the wait


def test_the_wait_ends_one_quiet_period_after_the_broker_stops_answering() -> None:
    broker = waited(every_s=0.5, answers=2)
    assert len(broker.queue) == 2 and not broker.batch.drained and not broker.batch.acknowledged()
    assert 1.9 < broker.now < 2.2  # the last answer at 1.0 s, then 1 s of silence
