"""CallBreaker: admission, single half-open trial, late results, driven by a hand-moved clock."""

from __future__ import annotations

import pytest

from connectors.breaker import BreakerOpen, CallBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def tripped(clock: Clock, changes: list[tuple[str, str]] | None = None) -> CallBreaker:
    breaker = CallBreaker(
        "legacy",
        fail_max=2,
        reset_s=3.0,
        clock=clock,
        on_change=(lambda old, new: changes.append((old, new))) if changes is not None else None,
    )
    for _ in range(2):
        breaker.record(breaker.admit(), failed=True)
    assert breaker.state == "open"
    return breaker


def test_opens_after_fail_max_consecutive_failures() -> None:
    breaker = CallBreaker("legacy", fail_max=2, reset_s=3.0, clock=Clock())

    breaker.record(breaker.admit(), failed=True)
    assert (breaker.state, breaker.failures) == ("closed", 1)
    breaker.record(breaker.admit(), failed=False)
    assert breaker.failures == 0
    breaker.record(breaker.admit(), failed=True)
    breaker.record(breaker.admit(), failed=True)

    assert breaker.state == "open"


def test_open_refuses_with_whole_seconds_until_half_open() -> None:
    clock = Clock()
    breaker = tripped(clock)
    clock.now = 0.4

    with pytest.raises(BreakerOpen) as caught:
        breaker.admit()

    assert caught.value.retry_after == 3.0  # 2.6 s rounded up


def test_half_open_admits_exactly_one_trial() -> None:
    clock = Clock()
    breaker = tripped(clock)
    clock.now = 3.0

    assert breaker.admit() is True
    with pytest.raises(BreakerOpen) as caught:
        breaker.admit()

    assert caught.value.retry_after == 1.0
    breaker.record(True, failed=False)
    assert breaker.state == "closed"
    assert breaker.admit() is False


def test_abandoned_trial_frees_the_slot_for_another() -> None:
    clock = Clock()
    breaker = tripped(clock)
    clock.now = 3.0

    breaker.abandon(breaker.admit())

    assert breaker.state == "half-open"
    assert breaker.admit() is True


def test_late_results_do_not_decide_an_open_or_half_open_breaker() -> None:
    clock = Clock()
    changes: list[tuple[str, str]] = []
    breaker = tripped(clock, changes)

    breaker.record(False, failed=False)  # a call admitted before the trip, finishing late
    assert breaker.state == "open"
    clock.now = 3.0
    assert breaker.admit() is True
    breaker.record(False, failed=False)
    assert breaker.state == "half-open"

    breaker.record(True, failed=True)

    assert breaker.state == "open"
    assert changes == [("closed", "open"), ("open", "half-open"), ("half-open", "open")]
    with pytest.raises(BreakerOpen) as caught:
        breaker.admit()
    assert caught.value.retry_after == 3.0  # the reset period restarts when the trial fails


def test_listener_may_read_the_state_during_a_transition() -> None:
    seen: list[str] = []
    holder: list[CallBreaker] = []
    breaker = CallBreaker(
        "legacy", fail_max=1, reset_s=3.0, clock=Clock(), on_change=lambda old, new: seen.append(holder[0].state)
    )
    holder.append(breaker)

    breaker.record(breaker.admit(), failed=True)

    assert seen == ["open"]
