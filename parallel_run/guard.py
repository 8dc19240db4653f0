"""The canary guard's decision: given the last window's figures and the rule's thresholds, roll back or not (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from core.rules import GuardSpec


@dataclass(frozen=True)
class GuardWindow:
    """What the guard looks at: comparisons in the window, how many mismatched, how many were errors of a side."""

    comparisons: int  # every comparison, shadow failures included
    mismatches: int
    errors: int  # shadow errors and timeouts, and 5xx answers of the side that answered
    seconds: int  # how far back the window reaches

    @property
    def answered(self) -> int:
        """Comparisons where both sides answered without an error: the base of the mismatch rate."""
        return max(0, self.comparisons - self.errors)


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def trip_reason(window: GuardWindow, spec: GuardSpec) -> str | None:
    """Return why the canary must go back to legacy (the evidence, in words), or None while it may stay."""
    if window.comparisons < spec.min_samples:
        return None
    over = f"over {window.comparisons} comparisons in {window.seconds}s"
    error_rate = window.errors / window.comparisons
    if error_rate > spec.max_error_rate:
        return (
            f"guard: error rate {_pct(error_rate)} > {_pct(spec.max_error_rate)} "
            f"({window.errors} errors or timeouts) {over}"
        )
    mismatch_rate = window.mismatches / window.answered if window.answered else 0.0
    if mismatch_rate > spec.max_mismatch_rate:
        return (
            f"guard: mismatch rate {_pct(mismatch_rate)} > {_pct(spec.max_mismatch_rate)} "
            f"({window.mismatches} of {window.answered} answered) {over}"
        )
    return None
