"""Whether a sent batch counts as published, and up to which position, from its delivery reports alone (no broker)."""

from __future__ import annotations

from confluent_kafka import KafkaError

from connectors.relay_marker import Batch

ROWS = [(1, 700, "t", "a", b""), (2, 700, "t", "b", b""), (3, 701, "t", "a", b""), (4, 702, "t", "c", b"")]
TIMED_OUT = KafkaError(KafkaError._MSG_TIMED_OUT)


def sent(failed: set[int], reported: int | None = None) -> Batch:
    batch = Batch(ROWS, deadline=0.0, started=0.0)
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
