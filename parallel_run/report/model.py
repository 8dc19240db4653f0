"""What a reconciliation report holds for one capability over one window (pure data, figures already aggregated).

Counting rules, decided once here and applied by `query.py` in SQL:

- A comparison is a **mismatch** when it has at least one difference on a path that is not a known noise
  path of its capability, or any critical difference (noise never hides a critical path), or when it was
  recorded as a mismatch without any difference rows (nothing to explain it away). Every other answered
  comparison is a **match**, including one whose only differences are on noise paths.
- `shadow_error` / `shadow_timeout` comparisons are **shadow failures**: counted and shown separately, never
  mismatches, and left out of the match rate: match rate = matches / (matches + mismatches).
- Error rates are per side over all comparisons in the window: a 5xx status, or (shadow only) no answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class PathExample:
    """One masked example of a difference on a path: the two values exactly as stored (already masked)."""

    request_id: str
    at: datetime
    primary: str | None
    shadow: str | None


@dataclass(frozen=True)
class PathMismatch:
    """One JSON path that differed in counted mismatches: how often, how, when, and up to three examples."""

    path: str
    kinds: tuple[str, ...]
    count: int  # comparisons with a counted difference on this path
    critical_count: int  # of those, how many were on a critical field
    first_seen: datetime
    last_seen: datetime
    examples: tuple[PathExample, ...]
    noisy: bool = False  # also a noise path: listed because it is critical, and still counted


@dataclass(frozen=True)
class NoiseField:
    """A path where two answers of the primary itself differed, so its differences are not counted (unless critical)."""

    path: str
    seen: int  # times the primary differed from itself on this path (all time)
    first_seen: datetime
    last_seen: datetime
    in_window: int  # comparisons in the window with a difference on this path
    critical: bool  # a critical difference on it in the window: still counted as a mismatch


@dataclass(frozen=True)
class Latency:
    """Latency percentiles in milliseconds (continuous, interpolated); None where a side has no timings."""

    primary_p50: float | None = None
    primary_p99: float | None = None
    shadow_p50: float | None = None
    shadow_p99: float | None = None


@dataclass(frozen=True)
class CapabilityReport:
    """Every figure of one capability's parallel run in `since <= at < until`."""

    capability: str
    since: datetime
    until: datetime
    comparisons: int = 0  # every comparison row in the window, shadow failures included
    matches: int = 0
    mismatches: int = 0
    shadow_errors: int = 0
    shadow_timeouts: int = 0
    critical_mismatches: int = 0  # mismatching comparisons with at least one critical difference
    primary_errors: int = 0  # primary answered 5xx
    shadow_failed: int = 0  # shadow answered 5xx or did not answer
    first_at: datetime | None = None
    last_at: datetime | None = None
    primary_side: str | None = None
    shadow_side: str | None = None
    latency: Latency = Latency()
    skipped: Mapping[str, int] = field(default_factory=dict)  # reason -> shadows not sent
    paths: tuple[PathMismatch, ...] = ()  # most frequent first
    noise: tuple[NoiseField, ...] = ()

    @property
    def empty(self) -> bool:
        return self.comparisons == 0

    @property
    def compared(self) -> int:
        """Comparisons where both sides answered: the match rate's denominator."""
        return self.matches + self.mismatches

    @property
    def match_rate(self) -> float | None:
        return self.matches / self.compared if self.compared else None

    @property
    def observed_s(self) -> float:
        """Seconds from the first to the last comparison in the window (0 with fewer than two)."""
        if self.first_at is None or self.last_at is None:
            return 0.0
        return (self.last_at - self.first_at).total_seconds()

    @property
    def primary_error_rate(self) -> float | None:
        return self.primary_errors / self.comparisons if self.comparisons else None

    @property
    def shadow_error_rate(self) -> float | None:
        return self.shadow_failed / self.comparisons if self.comparisons else None

    @property
    def critical_paths(self) -> tuple[str, ...]:
        return tuple(p.path for p in self.paths if p.critical_count)
