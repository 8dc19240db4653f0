"""How reports say durations and rates: honest to the threshold, never rounded up to it."""

from __future__ import annotations

import pytest

from parallel_run.report import fmt


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (720, "12m"), (754, "12m 34s"), (3 * 3600 + 600, "3h 10m"), (86400, "24h"),
     (47 * 3600 + 59 * 60, "47h 59m"), (3 * 86400 + 7200, "3d 2h"), (7 * 86400, "7d")],
)  # fmt: skip
def test_duration(seconds: float, text: str) -> None:
    assert fmt.duration(seconds) == text


@pytest.mark.parametrize(
    ("rate", "below", "text"),
    [(0.991, 0.999, "99.1%"), (0.99899, 0.999, "99.899%"), (0.999, 0.999, "99.9%"), (1.0, None, "100.0%"),
     (0.99999, None, "99.999%"), (0.9999999, None, "99.9999%"), (26 / 35, None, "74.3%"), (None, None, "n/a")],
)  # fmt: skip
def test_percent_never_rounds_up_to_what_it_misses(rate: float | None, below: float | None, text: str) -> None:
    assert fmt.percent(rate, below) == text


def test_threshold_reads_as_configured() -> None:
    assert (fmt.threshold(0.999), fmt.threshold(0.95), fmt.threshold(1.0)) == ("99.9%", "95%", "100%")
