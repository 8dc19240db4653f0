"""Render judged reports as CSV: per capability one `summary` row, then one row per mismatching or noise path.

Every row carries the capability's figures, so any row can be read alone; `section` says what the row is
(summary | mismatch | noise) and the path columns are empty on summary rows. A noise row's `count` is the
comparisons in the window that differed on it (not counted), `noise_seen` how often the primary differed from
itself there; a critical noisy path also has its own mismatch row. Cells that a spreadsheet would
run as a formula are prefixed with a quote.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from parallel_run.report.verdict import Judged

COLUMNS = (
    "capability", "since", "until", "verdict", "failing", "comparisons", "matches", "mismatches", "match_rate",
    "critical_mismatches", "shadow_errors", "shadow_timeouts", "primary_error_rate", "shadow_error_rate",
    "primary_p50_ms", "primary_p99_ms", "shadow_p50_ms", "shadow_p99_ms", "skipped_queue_full",
    "skipped_not_sampled", "first_at", "last_at", "section", "path", "kinds", "count", "critical_count",
    "noisy", "noise_seen", "first_seen", "last_seen", "example_request_id", "example_primary", "example_shadow",
)  # fmt: skip
FORMULA_STARTS = ("=", "+", "@", "\t", "\r")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def render_csv(entries: Sequence[Judged]) -> str:
    """Return the CSV text, header first, in the column order of COLUMNS."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for entry in entries:
        r, v = entry.report, entry.verdict
        head = [
            r.capability, r.since, r.until, "READY" if v.ready else "NOT READY", "; ".join(v.failing), r.comparisons,
            r.matches, r.mismatches, r.match_rate, r.critical_mismatches, r.shadow_errors, r.shadow_timeouts,
            r.primary_error_rate, r.shadow_error_rate, r.latency.primary_p50, r.latency.primary_p99,
            r.latency.shadow_p50, r.latency.shadow_p99, r.skipped.get("queue_full", 0),
            r.skipped.get("not_sampled", 0), r.first_at, r.last_at,
        ]  # fmt: skip
        rows: list[list[object]] = [[*head, "summary", *[None] * 11]]
        for p in r.paths:
            e = p.examples[0] if p.examples else None
            rows.append([
                *head, "mismatch", p.path, " ".join(p.kinds), p.count, p.critical_count, p.noisy, None, p.first_seen,
                p.last_seen, e and e.request_id, e and e.primary, e and e.shadow,
            ])  # fmt: skip
        for n in r.noise:
            rows.append([
                *head, "noise", n.path, None, n.in_window, None, True, n.seen, n.first_seen, n.last_seen,
                None, None, None,
            ])  # fmt: skip
        writer.writerows([_cell(c) for c in row] for row in rows)
    return out.getvalue()
