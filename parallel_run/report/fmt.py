"""How figures read in reports and verdicts: durations, rates and timestamps as people say them (pure)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from parallel_run.report.model import CapabilityReport


def duration(seconds: float) -> str:
    """Say a duration in its two largest units: 45s, 12m, 3h 10m, 24h, 3d 2h (days only from 48h on)."""
    s = max(0, int(seconds))
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if s >= 48 * 3600:
        parts = [(days, "d"), (hours, "h")]
    elif s >= 3600:
        parts = [(days * 24 + hours, "h"), (minutes, "m")]
    elif s >= 60:
        parts = [(minutes, "m"), (secs, "s")]
    else:
        return f"{secs}s"
    return " ".join(f"{n}{unit}" for n, unit in parts if n) or "0s"


def percent(rate: float | None, below: float | None = None) -> str:
    """Say a rate in percent with as few decimals as keep it honest: never 100% unless it is, never rounded
    up to a threshold (`below`) that it misses."""
    if rate is None:
        return "n/a"
    for decimals in range(1, 5):
        shown = round(rate * 100, decimals)
        if rate < 1 and shown >= 100:
            continue
        if below is not None and rate < below and shown >= round(below * 100, 6):
            continue
        break
    else:
        # Still indistinguishable at four decimals: cut rather than round, so it reads below.
        shown = math.floor(rate * 100 * 10**decimals) / 10**decimals
    text = f"{shown:.{decimals}f}"
    return (text.rstrip("0").rstrip(".") if "." in text and decimals > 1 else text) + "%"


def threshold(rate: float) -> str:
    """Say a configured threshold in percent as written: 0.999 -> 99.9%."""
    return f"{round(rate * 100, 6):g}%"


def when(at: datetime | None) -> str:
    """Say a timestamp in UTC to the second, or '-' when there is none."""
    return "-" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def ms(value: float | None) -> str:
    """Say a latency in milliseconds, or '-' when there were no timings."""
    return "-" if value is None else f"{value:.1f} ms"


def summary_rows(r: CapabilityReport) -> list[tuple[str, str]]:
    """The figures every rendering of a capability's summary shows, in order, as (name, value) text."""
    return [
        ("comparisons", str(r.comparisons)),
        ("matches", str(r.matches)),
        ("mismatches", str(r.mismatches)),
        ("match rate", f"{percent(r.match_rate)} of {r.compared} answered by both sides"),
        ("critical-field mismatches", str(r.critical_mismatches)),
        ("shadow errors / timeouts", f"{r.shadow_errors} / {r.shadow_timeouts} (not in the match rate)"),
        ("skipped shadows", ", ".join(f"{k} {v}" for k, v in r.skipped.items()) or "none"),
        ("first / last comparison", f"{when(r.first_at)} / {when(r.last_at)}"),
        ("observed for", duration(r.observed_s)),
    ]
