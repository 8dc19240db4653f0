"""Which rows of a sent batch may be marked published, from its delivery reports alone (no broker needed)."""

from __future__ import annotations

from confluent_kafka import KafkaError

from connectors.relay_marker import Batch


class Report:
    """The parts of a delivery report's message the batch reads."""

    def __init__(self, topic: str, key: str) -> None:
        self._topic, self._key = topic, key.encode()

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes:
        return self._key


ROWS = [(1, "t", "a", b""), (2, "t", "b", b""), (3, "t", "a", b""), (4, "t", "c", b""), (5, "t", "b", b"")]
TIMED_OUT = KafkaError(KafkaError._MSG_TIMED_OUT)


def sent(rows: list[tuple[int, str, str, bytes]], failed_keys: set[str], reported: int | None = None) -> Batch:
    batch = Batch(rows, deadline=0.0, started=0.0, ids=[row[0] for row in rows])
    for _row_id, topic, key, _value in rows[:reported]:
        batch.report(TIMED_OUT if key in failed_keys else None, Report(topic, key))  # type: ignore[arg-type]
    return batch


def test_every_row_is_safe_when_every_report_acknowledged() -> None:
    assert sent(ROWS, set()).acknowledged(set()) == ([1, 2, 3, 4, 5], False)


def test_a_failed_record_holds_back_every_row_of_its_key_and_only_those() -> None:
    blocked: set[tuple[str, str]] = set()
    assert sent(ROWS, {"a"}).acknowledged(blocked) == ([2, 4, 5], True)
    assert blocked == {("t", "a")}
    # The key stays blocked for the next batch, so its retry goes out before any later row of it.
    assert sent([(6, "t", "a", b""), (7, "t", "c", b"")], set()).acknowledged(blocked) == ([7], True)


def test_a_batch_missing_a_report_marks_nothing() -> None:
    blocked: set[tuple[str, str]] = set()
    assert sent(ROWS, set(), reported=4).acknowledged(blocked) == ([], True)
    assert blocked == {("t", "a"), ("t", "b"), ("t", "c")}
