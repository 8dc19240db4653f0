"""Whether a sent batch counts as published, and up to which position, from its delivery reports alone (no broker)."""

from __future__ import annotations

from confluent_kafka import KafkaError

from connectors.relay_marker import Batch

ROWS = [(1, 700, "t", "a", b""), (2, 700, "t", "b", b""), (3, 701, "t", "a", b""), (4, 702, "t", "c", b"")]
TIMED_OUT = KafkaError(KafkaError._MSG_TIMED_OUT)


def sent(failed: set[int], reported: int | None = None) -> Batch:
    batch = Batch(ROWS, started=0.0)
    for row in ROWS[:reported]:
        batch.report(TIMED_OUT if row[0] in failed else None, None)  # type: ignore[arg-type]
    return batch


def test_a_batch_acknowledged_whole_is_published_up_to_its_last_rows_position() -> None:
    batch = sent(set())
    assert batch.acknowledged()
    assert batch.position == (702, 4)


def test_one_failed_report_fails_the_whole_batch_and_keeps_the_error() -> None:
    batch = sent({2})
    assert batch.complete and not batch.acknowledged()
    assert batch.error is not None and batch.error.code() == KafkaError._MSG_TIMED_OUT


def test_a_batch_missing_a_report_is_not_acknowledged() -> None:
    assert not sent(set(), reported=3).acknowledged()


class SlowBroker:
    """A producer whose poll advances a fake clock and acknowledges one row every `every_s`, up to `answers` rows."""

    def __init__(self, batch: Batch, every_s: float, answers: int) -> None:
        self.batch, self.every_s, self.answers = batch, every_s, answers
        self.now, self.next_at = 0.0, every_s

    def clock(self) -> float:
        return self.now

    def poll(self, timeout: float) -> int:
        self.now += timeout
        if self.now >= self.next_at and len(self.batch.reports) < self.answers:
            self.batch.report(None, None)  # type: ignore[arg-type]
            self.next_at += self.every_s
        return 0


def test_a_slow_broker_that_keeps_answering_gets_the_whole_batch_acknowledged() -> None:
    batch = Batch(ROWS, started=0.0)
    broker = SlowBroker(batch, every_s=0.8, answers=len(ROWS))
    batch.wait(broker, broker.clock, quiet_s=1.0)  # type: ignore[arg-type]
    assert batch.acknowledged()
    assert broker.now > 3.0  # well past one quiet period from the start: only silence ends the wait


def test_the_wait_ends_one_quiet_period_after_the_broker_stops_answering() -> None:
    batch = Batch(ROWS, started=0.0)
    broker = SlowBroker(batch, every_s=0.5, answers=2)
    batch.wait(broker, broker.clock, quiet_s=1.0)  # type: ignore[arg-type]
    assert len(batch.reports) == 2 and not batch.acknowledged()
    assert 1.9 < broker.now < 2.2  # the last answer at 1.0 s, then 1 s of silence
