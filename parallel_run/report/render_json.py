"""Render judged reports as one JSON document (the shape is documented in parallel_run/README.md, "Reports")."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from parallel_run.report.verdict import Judged


def _time(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def as_dict(entry: Judged) -> dict[str, Any]:
    """One capability's report, verdict and thresholds as plain JSON-ready data."""
    r = entry.report
    return {
        "capability": r.capability,
        "window": {"since": _time(r.since), "until": _time(r.until)},
        "verdict": {"ready": entry.verdict.ready, "failing": list(entry.verdict.failing)},
        "readiness": asdict(entry.spec),
        "empty": r.empty,
        "primary_side": r.primary_side,
        "shadow_side": r.shadow_side,
        "comparisons": r.comparisons,
        "compared": r.compared,
        "matches": r.matches,
        "mismatches": r.mismatches,
        "match_rate": r.match_rate,
        "critical_mismatches": r.critical_mismatches,
        "shadow_errors": r.shadow_errors,
        "shadow_timeouts": r.shadow_timeouts,
        "errors": {"primary": r.primary_errors, "shadow": r.shadow_failed},
        "error_rates": {"primary": r.primary_error_rate, "shadow": r.shadow_error_rate},
        "latency_ms": {
            "primary": {"p50": r.latency.primary_p50, "p99": r.latency.primary_p99},
            "shadow": {"p50": r.latency.shadow_p50, "p99": r.latency.shadow_p99},
        },
        "skipped": dict(r.skipped),
        "first_at": _time(r.first_at),
        "last_at": _time(r.last_at),
        "observed_s": r.observed_s,
        "mismatches_by_path": [
            {
                "path": p.path, "kinds": list(p.kinds), "count": p.count, "critical_count": p.critical_count,
                "noisy": p.noisy, "first_seen": _time(p.first_seen), "last_seen": _time(p.last_seen),
                "examples": [
                    {"request_id": e.request_id, "at": _time(e.at), "primary": e.primary, "shadow": e.shadow}
                    for e in p.examples
                ],
            }
            for p in r.paths
        ],
        "noise": [
            {
                "path": n.path, "seen": n.seen, "in_window": n.in_window, "critical": n.critical,
                "first_seen": _time(n.first_seen), "last_seen": _time(n.last_seen),
            }
            for n in r.noise
        ],
    }  # fmt: skip


def render_json(entries: Sequence[Judged], generated_at: datetime) -> str:
    """Return `{"generated_at", "ready", "capabilities": [...]}` as indented JSON; `ready` is true when all are."""
    document = {
        "generated_at": generated_at.isoformat(),
        "ready": all(e.verdict.ready for e in entries),
        "capabilities": [as_dict(e) for e in entries],
    }
    return json.dumps(document, indent=2) + "\n"
