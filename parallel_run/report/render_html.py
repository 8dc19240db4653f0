"""Render judged reports as ONE self-contained HTML page: inline CSS and SVG, no script, no external resource.

Every value from the database (paths, masked examples, names) goes through html.escape, so a masked value
that looks like markup is shown, never run; the page opens offline and can be attached to a sign-off.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape

from parallel_run.report import fmt
from parallel_run.report.model import CapabilityReport
from parallel_run.report.render_text import empty_message
from parallel_run.report.svg import Bar, bar_chart
from parallel_run.report.verdict import Judged

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       color: #1b1f24; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 2.2em; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 1.05em; margin: 1.4em 0 .4em; }
.muted { color: #57606a; }
table { border-collapse: collapse; margin: .4em 0 1em; } th, td { border: 1px solid #d0d7de; padding: 4px 8px;
       text-align: left; vertical-align: top; } th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .val { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; word-break: break-all; }
.verdict { display: inline-block; font-weight: 700; font-size: 1.3em; padding: .25em .8em; border-radius: 6px;
       color: #fff; letter-spacing: .04em; }
.ready { background: #1a7f37; } .not-ready { background: #cf222e; }
ul.failing { margin: .5em 0 1em; } ul.failing li { color: #a40e26; }
.empty { padding: .8em 1em; background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; }
svg.chart text { font: 12px system-ui, sans-serif; fill: #1b1f24; }
rect.bar { fill: #0969da; } rect.primary { fill: #6e7781; } rect.shadow { fill: #0969da; }
rect.critical { fill: #cf222e; }
.tag { font-size: 11px; padding: 1px 5px; border-radius: 4px; background: #eaeef2; }
.tag.crit { background: #ffebe9; color: #a40e26; }
"""
CRITICAL_TAG = '<span class="tag crit">critical: still counted</span>'


def render_html(entries: Sequence[Judged], generated_at: datetime) -> str:
    """Return the whole page: an overview of every capability's verdict, then one section per capability."""
    ready = sum(e.verdict.ready for e in entries)
    body = [
        "<h1>Parallel-run reconciliation report</h1>",
        f'<p class="muted">generated {escape(fmt.when(generated_at))} &middot; {len(entries)} capabilities, '
        f"{ready} ready, {len(entries) - ready} not ready</p>",
        _overview(entries),
        *(_section(e) for e in entries),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>strangler parallel-run report</title>"
        f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _badge(entry: Judged) -> str:
    css, label = ("ready", "READY") if entry.verdict.ready else ("not-ready", "NOT READY")
    return f'<span class="verdict {css}">{label}</span>'


def _anchor(name: str) -> str:
    return "cap-" + "".join(c if c.isalnum() else "-" for c in name)


def _overview(entries: Sequence[Judged]) -> str:
    rows = "".join(
        f'<tr><td><a href="#{escape(_anchor(e.report.capability))}">{escape(e.report.capability)}</a></td>'
        f"<td>{_badge(e)}</td><td class=num>{e.report.comparisons}</td>"
        f"<td class=num>{escape(fmt.percent(e.report.match_rate))}</td>"
        f"<td class=num>{e.report.critical_mismatches}</td></tr>"
        for e in entries
    )
    return (
        "<table><tr><th>capability</th><th>verdict</th><th>comparisons</th><th>match rate</th>"
        f"<th>critical mismatches</th></tr>{rows}</table>"
    )


def _section(entry: Judged) -> str:
    r = entry.report
    sides = (
        f" &middot; {escape(r.primary_side)} (primary) vs {escape(r.shadow_side or '')} (shadow)"
        if r.primary_side
        else ""
    )
    parts = [
        f'<h2 id="{escape(_anchor(r.capability))}">{escape(r.capability)}</h2>',
        f'<p class="muted">window {escape(fmt.when(r.since))} .. {escape(fmt.when(r.until))}{sides}</p>',
        f"<p>{_badge(entry)}</p>",
    ]
    if entry.verdict.failing:
        items = "".join(f"<li>{escape(reason)}</li>" for reason in entry.verdict.failing)
        parts.append(f'<ul class="failing">{items}</ul>')
    if r.empty:
        parts.append(f'<p class="empty">{escape(empty_message(r))}</p>')
        parts.append(_noise(r))
        return "\n".join(parts)
    parts += [_summary(r), _latency(r), _paths(r), _noise(r)]
    return "\n".join(parts)


def _summary(r: CapabilityReport) -> str:
    rows = [
        *fmt.summary_rows(r),
        ("error rate, primary", f"{fmt.percent(r.primary_error_rate)} ({r.primary_errors})"),
        ("error rate, shadow", f"{fmt.percent(r.shadow_error_rate)} ({r.shadow_failed})"),
    ]
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f"<h3>Summary</h3><table>{cells}</table>"


def _latency(r: CapabilityReport) -> str:
    lat = r.latency
    pairs = [
        (f"p50 {r.primary_side}", lat.primary_p50, "primary"),
        (f"p50 {r.shadow_side}", lat.shadow_p50, "shadow"),
        (f"p99 {r.primary_side}", lat.primary_p99, "primary"),
        (f"p99 {r.shadow_side}", lat.shadow_p99, "shadow"),
    ]
    bars = [Bar(label, value or 0.0, css, fmt.ms(value)) for label, value, css in pairs]
    return "<h3>Latency, primary vs shadow</h3>" + bar_chart("latency p50 and p99 per side in milliseconds", bars)


def _paths(r: CapabilityReport) -> str:
    if not r.paths:
        return "<h3>Mismatches by path</h3><p>no mismatching paths</p>"
    chart = bar_chart(
        "mismatching comparisons per JSON path",
        [Bar(p.path, p.count, "critical" if p.critical_count else "bar") for p in r.paths],
    )
    rows = []
    for p in r.paths:
        tags = "".join(
            [f' <span class="tag crit">critical {p.critical_count}</span>' if p.critical_count else "",
             ' <span class="tag">noisy, still counted</span>' if p.noisy else ""]
        )  # fmt: skip
        examples = "".join(
            f"<tr><td><code>{escape(e.request_id)}</code></td><td class=val>{_value(e.primary)}</td>"
            f"<td class=val>{_value(e.shadow)}</td></tr>"
            for e in p.examples
        )
        rows.append(
            f"<tr><td><code>{escape(p.path)}</code>{tags}</td><td class=num>{p.count}</td>"
            f"<td>{escape(', '.join(p.kinds))}</td><td>{escape(fmt.when(p.first_seen))}</td>"
            f"<td>{escape(fmt.when(p.last_seen))}</td><td><table><tr><th>request</th><th>primary (masked)</th>"
            f"<th>shadow (masked)</th></tr>{examples}</table></td></tr>"
        )
    return (
        "<h3>Mismatches by path</h3>" + chart + "<table><tr><th>path</th><th>count</th><th>kinds</th>"
        "<th>first seen</th><th>last seen</th><th>examples</th></tr>" + "".join(rows) + "</table>"
    )


def _value(value: str | None) -> str:
    return '<span class="muted">(absent)</span>' if value is None else escape(value)


def _noise(r: CapabilityReport) -> str:
    if not r.noise:
        return ""
    rows = "".join(
        f"<tr><td><code>{escape(n.path)}</code></td><td class=num>{n.seen}</td><td class=num>{n.in_window}</td>"
        f"<td>{escape(fmt.when(n.first_seen))}</td><td>{escape(fmt.when(n.last_seen))}</td>"
        f"<td>{CRITICAL_TAG if n.critical else ''}</td></tr>"
        for n in r.noise
    )
    return (
        "<h3>Noise</h3><p class=muted>paths where two answers of the primary itself differed; differences here "
        "are not counted as mismatches unless the path is critical</p><table><tr><th>path</th>"
        "<th>primary differed from itself</th><th>in this window</th><th>first seen</th><th>last seen</th>"
        f"<th></th></tr>{rows}</table>"
    )
