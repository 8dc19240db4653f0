"""What a parallel run produces: one comparison of two outcomes and the paths where they differ (pure data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

VERDICTS = ("match", "mismatch", "shadow_error", "shadow_timeout")
DIFF_KINDS = ("status", "value", "type", "missing_in_shadow", "missing_in_primary")


@dataclass(frozen=True)
class Difference:
    """One JSON path (list indexes generalised to [*]) where the two outcomes differ, values already masked."""

    path: str
    kind: str
    primary: str | None
    shadow: str | None
    critical: bool = False


@dataclass(frozen=True)
class Comparison:
    """The primary's and the shadow's outcome of one call, compared."""

    at: datetime
    capability: str
    request_id: str
    primary_side: str
    shadow_side: str
    primary_status: int
    shadow_status: int | None
    primary_ms: float
    shadow_ms: float | None
    verdict: str
    differences: tuple[Difference, ...] = field(default_factory=tuple)

    @property
    def critical(self) -> bool:
        return any(d.critical for d in self.differences)


@dataclass(frozen=True)
class WindowStats:
    """What a capability's comparisons showed since a moment: the guard's evidence (mismatches exclude noise)."""

    comparisons: int = 0
    mismatches: int = 0  # a difference off the noise paths, or any critical difference
    critical_mismatches: int = 0
    shadow_errors: int = 0
    shadow_timeouts: int = 0
    primary_5xx: int = 0
