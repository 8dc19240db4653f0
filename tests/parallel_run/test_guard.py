"""The canary guard trips on enough bad evidence only, and says why in numbers."""

from __future__ import annotations

from core.rules import GuardSpec
from parallel_run.guard import GuardWindow, trip_reason

SPEC = GuardSpec(max_mismatch_rate=0.01, max_error_rate=0.05, min_samples=20, window_s=300)


def test_too_few_samples_never_trip() -> None:
    assert trip_reason(GuardWindow(19, 19, 0, 300), SPEC) is None


def test_a_mismatch_rate_over_the_threshold_trips_with_the_evidence() -> None:
    reason = trip_reason(GuardWindow(50, 6, 0, 300), SPEC)
    assert reason == "guard: mismatch rate 12.0% > 1.0% (6 of 50 answered) over 50 comparisons in 300s"


def test_errors_trip_before_mismatches_and_are_left_out_of_the_mismatch_base() -> None:
    reason = trip_reason(GuardWindow(40, 0, 4, 300), SPEC)
    assert reason is not None and reason.startswith("guard: error rate 10.0% > 5.0% (4 errors or timeouts)")
    assert GuardWindow(40, 0, 4, 300).answered == 36


def test_rates_at_the_threshold_do_not_trip() -> None:
    assert trip_reason(GuardWindow(100, 0, 5, 300), SPEC) is None
    assert trip_reason(GuardWindow(100, 1, 0, 300), SPEC) is None
