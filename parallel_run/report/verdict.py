"""The cutover-readiness verdict: `readiness` judges a report against a capability's ReadinessSpec (pure);
`verdict_for` reads the evidence for the cutover gate.

Criteria, each reported in plain words when it fails:
- enough comparisons: matches + mismatches (shadow failures are not evidence of behaviour) >= min_comparisons;
- match rate = matches / (matches + mismatches) >= min_match_rate;
- critical-field mismatches <= max_critical_mismatches (noise never excuses a critical path);
- observed long enough: last - first comparison in the window >= window_s.

The gate's window (`gate_window`) reaches back max(2 x window_s, 24h) from now. Looking back only window_s
could never show window_s of evidence (first-to-last is always shorter than the look-back); twice that lets a
run that has been going for window_s pass, while mismatches older than the look-back stop counting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from core.rules import CapabilitySpec, ReadinessSpec
from parallel_run.report import fmt
from parallel_run.report.model import CapabilityReport
from parallel_run.report.query import build_reports

MIN_LOOKBACK_S = 86400


@dataclass(frozen=True)
class Verdict:
    """READY when `failing` is empty; otherwise each failing criterion in plain words."""

    ready: bool
    failing: tuple[str, ...] = ()

    def describe(self) -> str:
        return "READY" if self.ready else "NOT READY: " + "; ".join(self.failing)


@dataclass(frozen=True)
class Judged:
    """A report, the spec it was judged against, and the verdict: what every renderer prints."""

    report: CapabilityReport
    spec: ReadinessSpec
    verdict: Verdict


def judge(report: CapabilityReport, spec: ReadinessSpec) -> Judged:
    """Pair a report with its verdict under `spec`."""
    return Judged(report, spec, readiness(report, spec))


def readiness(report: CapabilityReport, spec: ReadinessSpec) -> Verdict:
    """Judge one report against one spec; pure, the same report always gets the same verdict."""
    failing: list[str] = []
    if report.compared < spec.min_comparisons:
        failures = report.shadow_errors + report.shadow_timeouts
        aside = f" (not counting {failures} shadow failures)" if failures else ""
        noun = "comparison" if report.compared == 1 else "comparisons"
        failing.append(f"{report.compared} {noun}{aside}, at least {spec.min_comparisons} needed")
    rate, wanted = report.match_rate, fmt.threshold(spec.min_match_rate)
    if rate is None:
        failing.append(f"no match rate without answered comparisons, at least {wanted} needed")
    elif rate < spec.min_match_rate:
        failing.append(f"match rate {fmt.percent(rate, below=spec.min_match_rate)} below {wanted}")
    if report.critical_mismatches > spec.max_critical_mismatches:
        paths = ", ".join(report.critical_paths) or "no path on file"
        allowed = f", at most {spec.max_critical_mismatches} allowed" if spec.max_critical_mismatches else ""
        failing.append(f"{report.critical_mismatches} critical-field mismatches ({paths}){allowed}")
    if report.observed_s < spec.window_s:
        failing.append(f"observed for {fmt.duration(report.observed_s)}, at least {fmt.duration(spec.window_s)} needed")
    return Verdict(ready=not failing, failing=tuple(failing))


def gate_window(spec: ReadinessSpec, now: datetime) -> tuple[datetime, datetime]:
    """Return the (since, until) the cutover gate judges: max(2 x window_s, 24h) back from `now`, until now."""
    lookback = max(2 * spec.window_s, MIN_LOOKBACK_S)
    # `until` is exclusive: a comparison recorded at exactly `now` still counts.
    return now - timedelta(seconds=lookback), now + timedelta(microseconds=1)


def verdict_for(engine: sa.Engine, cap: CapabilitySpec, now: datetime | None = None) -> Verdict:
    """Read the capability's evidence over its gate window (see `gate_window`) and judge it."""
    since, until = gate_window(cap.readiness, now or datetime.now(UTC))
    (report,) = build_reports(engine, [(cap.name, since, until)])
    return readiness(report, cap.readiness)
