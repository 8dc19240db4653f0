"""Render judged reports as text: rich tables and colour on a terminal, plain ASCII tables otherwise."""

from __future__ import annotations

import io
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from parallel_run.report import fmt
from parallel_run.report.model import CapabilityReport
from parallel_run.report.verdict import Judged


def empty_message(report: CapabilityReport) -> str:
    """The plain sentence every format uses for a window without comparisons."""
    return (
        f"no comparisons for {report.capability} between {fmt.when(report.since)} and {fmt.when(report.until)}; "
        "run it in parallel mode first"
    )


def render_text(entries: Sequence[Judged], *, terminal: bool = False, width: int = 120) -> str:
    """Return the report as text; `terminal` adds colour and lighter table borders, never other content."""
    out = io.StringIO()
    console = Console(
        file=out, force_terminal=terminal, color_system="auto" if terminal else None, width=width,
        highlight=False, emoji=False, soft_wrap=False,
    )  # fmt: skip
    style = _Style(terminal)
    for i, entry in enumerate(entries):
        if i:
            console.print()
        _capability(console, style, entry)
    return out.getvalue()


class _Style:
    def __init__(self, terminal: bool) -> None:
        self.box = box.SIMPLE_HEAD if terminal else box.ASCII
        self.terminal = terminal

    def table(self, *columns: str, title: str) -> Table:
        table = Table(box=self.box, title=title, title_justify="left", title_style="bold" if self.terminal else "")
        for column in columns:
            # Paths and masked values are evidence: wrap them, never cut them short with an ellipsis.
            table.add_column(column, overflow="fold")
        return table


def _capability(console: Console, style: _Style, entry: Judged) -> None:
    r, verdict = entry.report, entry.verdict
    sides = f"  {r.primary_side} (primary) vs {r.shadow_side} (shadow)" if r.primary_side else ""
    console.print(Text(f"{r.capability}{sides}", style="bold"))
    console.print(Text(f"window {fmt.when(r.since)} .. {fmt.when(r.until)}"))
    label = "READY" if verdict.ready else "NOT READY"
    if style.terminal:
        colour = "green" if verdict.ready else "red"
        console.print(Text.assemble("verdict: ", (f" {label} ", f"bold white on {colour}")))
    else:
        console.print(Text(f"verdict: {label}"))
    for reason in verdict.failing:
        console.print(Text(f"  - {reason}"))
    if r.empty:
        console.print(Text(empty_message(r)))
        _noise(console, style, r)
        return
    _summary(console, style, r)
    _paths(console, style, r)
    _noise(console, style, r)


def _summary(console: Console, style: _Style, r: CapabilityReport) -> None:
    table = style.table("figure", "value", title="summary")
    for name, value in fmt.summary_rows(r):
        table.add_row(Text(name), Text(value))
    console.print(table)
    sides = style.table("side", "p50", "p99", "error rate", title="latency and errors")
    sides.add_row(
        Text(f"primary ({r.primary_side})"), Text(fmt.ms(r.latency.primary_p50)),
        Text(fmt.ms(r.latency.primary_p99)), Text(f"{fmt.percent(r.primary_error_rate)} ({r.primary_errors})"),
    )  # fmt: skip
    sides.add_row(
        Text(f"shadow ({r.shadow_side})"), Text(fmt.ms(r.latency.shadow_p50)),
        Text(fmt.ms(r.latency.shadow_p99)), Text(f"{fmt.percent(r.shadow_error_rate)} ({r.shadow_failed})"),
    )  # fmt: skip
    console.print(sides)


def _paths(console: Console, style: _Style, r: CapabilityReport) -> None:
    if not r.paths:
        console.print(Text("no mismatching paths"))
        return
    table = style.table("path", "count", "critical", "kinds", "first seen", "last seen", title="mismatches by path")
    for p in r.paths:
        critical = f"{p.critical_count}" + (" (noisy, still counted)" if p.noisy else "")
        table.add_row(
            Text(p.path), Text(str(p.count)), Text(critical), Text(", ".join(p.kinds)), Text(fmt.when(p.first_seen)),
            Text(fmt.when(p.last_seen)),
        )  # fmt: skip
    console.print(table)
    examples = style.table("path", "request", "primary (masked)", "shadow (masked)", title="examples, newest first")
    for p in r.paths:
        for e in p.examples:
            examples.add_row(Text(p.path), Text(e.request_id), Text(_value(e.primary)), Text(_value(e.shadow)))
    console.print(examples)


def _value(value: str | None) -> str:
    return "(absent)" if value is None else value


def _noise(console: Console, style: _Style, r: CapabilityReport) -> None:
    if not r.noise:
        return
    table = style.table(
        "path", "primary differed from itself", "in window", "first seen", "last seen", "note",
        title="noise (differences here are not counted)",
    )  # fmt: skip
    for n in r.noise:
        note = "critical: still counted" if n.critical else ""
        table.add_row(
            Text(n.path), Text(str(n.seen)), Text(str(n.in_window)), Text(fmt.when(n.first_seen)),
            Text(fmt.when(n.last_seen)), Text(note),
        )  # fmt: skip
    console.print(table)
