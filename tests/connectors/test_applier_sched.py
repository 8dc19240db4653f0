"""Unit tests of the applier's bookkeeping: per-key queues with retry delays, and per-partition commit positions."""

from __future__ import annotations

import threading

from connectors.applier_sched import KeyQueues, OffsetTracker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_handed_to_one_worker_at_a_time_in_fifo_order() -> None:
    queues: KeyQueues[str, int] = KeyQueues()
    for item in (1, 2, 3):
        queues.put("a", item)
    assert queues.take(0) == "a"
    assert queues.take(0) is None  # owned: nobody else gets it, even with items queued
    assert queues.head("a") == 1
    queues.pop("a", 1)
    queues.put("a", 4)
    assert queues.take(0) is None  # a new item does not make an owned key ready again
    queues.release("a")
    assert queues.take(0) == "a"
    assert [queues.head("a")] == [2]
    assert queues.items() == 3


def test_a_failing_key_waits_out_its_delay_while_other_keys_flow() -> None:
    clock = Clock()
    queues: KeyQueues[str, str] = KeyQueues(clock)
    queues.put("a", "a1")
    queues.put("b", "b1")
    assert queues.take(0) == "a"
    queues.release("a", retry_after=5.0)
    queues.put("a", "a2")
    assert queues.take(0) == "b"
    queues.pop("b", "b1")
    queues.put("b", "b2")
    queues.release("b")
    assert queues.take(0) == "b"  # b keeps flowing while a waits
    queues.pop("b", "b2")
    queues.release("b")
    assert queues.take(0) is None
    clock.now += 5.0
    assert queues.take(0) == "a"
    assert queues.head("a") == "a1"  # the failed head is retried first: order is kept
    assert queues.keys_in_flight() == 1


def test_take_wakes_up_for_a_put_from_another_thread() -> None:
    queues: KeyQueues[str, int] = KeyQueues()
    threading.Timer(0.05, queues.put, args=("k", 1)).start()
    assert queues.take(timeout=5.0) == "k"


def test_drop_keeps_the_head_an_owner_is_working_on() -> None:
    queues: KeyQueues[str, tuple[int, int]] = KeyQueues()
    for item in ((0, 1), (1, 2), (0, 3)):
        queues.put("k", item)
    queues.put("j", (0, 4))
    assert queues.take(0) == "k"
    assert queues.drop(lambda item: item[0] == 0) == 2  # (0, 1) is owned; (0, 3) and (0, 4) go
    assert queues.head("k") == (0, 1)
    queues.pop("k", (0, 1))
    assert queues.head("k") == (1, 2)
    assert queues.items() == 1


def test_close_releases_waiting_takers() -> None:
    queues: KeyQueues[str, int] = KeyQueues()
    threading.Timer(0.05, queues.close).start()
    assert queues.take(timeout=5.0) is None


def test_commit_position_is_the_lowest_unsettled_offset() -> None:
    tracker = OffsetTracker()
    tp = ("t", 0)
    tracker.assign([tp])
    for offset in (10, 11, 12, 13):
        tracker.consumed(tp, offset)
    tracker.settle(tp, 11)
    tracker.settle(tp, 13)
    assert tracker.positions() == {tp: 10}
    tracker.settle(tp, 10)
    assert tracker.positions() == {tp: 12}
    tracker.settle(tp, 12)
    assert tracker.positions() == {tp: 14}
    assert tracker.lag() == {tp: 4}  # nothing committed yet: everything consumed since the assignment
    tracker.mark_committed({tp: 14})
    assert tracker.lag() == {tp: 0}


def test_a_revoked_partition_is_forgotten() -> None:
    tracker = OffsetTracker()
    tracker.assign([("t", 0), ("t", 1)])
    tracker.consumed(("t", 1), 5)
    tracker.revoke([("t", 1)])
    tracker.settle(("t", 1), 5)
    tracker.consumed(("t", 1), 6)
    assert not tracker.owns(("t", 1))
    assert tracker.positions() == {}
