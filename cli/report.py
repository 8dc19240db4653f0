"""`strangler report`: the parallel run's reconciliation report and readiness verdict per capability.

Exit codes: 0 the report was produced (whatever it says, an empty window included); 1 the control-plane
database could not be read; 2 the request was refused (unknown capability, bad --since/--until, settings or
rules file invalid); 3 with --fail-if-not-ready, at least one reported capability is NOT READY.
"""

from __future__ import annotations

import re
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import sqlalchemy as sa

from core.db import make_engine
from core.migrate import create_schema
from core.rules import RulesError, RuleSet, load_rules
from core.settings import Settings, SettingsError
from parallel_run.report.query import Window, build_reports
from parallel_run.report.render_csv import render_csv
from parallel_run.report.render_html import render_html
from parallel_run.report.render_json import render_json
from parallel_run.report.render_text import render_text
from parallel_run.report.verdict import Judged, gate_window, judge

DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
EXIT_NOT_READY = 3


class Refused(click.ClickException):
    """The request cannot be served as asked; one line on stderr, exit 2."""

    exit_code = 2


def parse_when(text: str, until: datetime, option: str) -> datetime:
    """Read `30m`, `24h`, `7d` (back from `until`) or an ISO timestamp (UTC when it names no zone)."""
    if match := DURATION.match(text):
        return until - timedelta(**{UNITS[match[2]]: int(match[1])})
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise Refused(f"{option}: expected a duration like 30m, 24h, 7d or an ISO timestamp, got {text!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _context() -> tuple[RuleSet, sa.Engine]:
    try:
        settings = Settings.from_env()
        rules = load_rules(settings.rules_path)
    except (SettingsError, RulesError) as exc:
        raise Refused(str(exc)) from None
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        # As `routes` does: a fresh control plane gets its tables, so a report before any traffic is just empty.
        create_schema(engine)
    except sa.exc.OperationalError as exc:
        raise click.ClickException(f"cannot reach the control-plane database: {exc.orig}") from None
    return rules, engine


def _windows(rules: RuleSet, names: list[str], since: str | None, until: str | None) -> list[Window]:
    end = parse_when(until, datetime.now(UTC), "--until") if until else datetime.now(UTC)
    if since is None:
        # No --since: each capability over the window its cutover gate judges, so both agree.
        return [(name, *gate_window(rules.capabilities[name].readiness, end)) for name in names]
    start = parse_when(since, end, "--since")
    if start >= end:
        raise Refused(f"--since ({start.isoformat()}) must be before --until ({end.isoformat()})")
    return [(name, start, end) for name in names]


@click.command()
@click.option("--capability", "capabilities", multiple=True, help="report only this capability (repeatable)")
@click.option("--since", help="window start: 30m, 24h, 7d back from --until, or an ISO timestamp [default: the gate's]")
@click.option("--until", help="window end (exclusive): a duration back from now or an ISO timestamp [default: now]")
@click.option("--format", "fmt", type=click.Choice(["text", "html", "json", "csv"]), default="text", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path), help="write to FILE")
@click.option("--fail-if-not-ready", is_flag=True, help=f"exit {EXIT_NOT_READY} when any capability is NOT READY")
def report(
    capabilities: tuple[str, ...], since: str | None, until: str | None, fmt: str, out: Path | None,
    fail_if_not_ready: bool,
) -> None:  # fmt: skip
    """Compare primary and shadow per capability: match rate, mismatches by path, noise, latency, verdict.

    Without --since each capability is judged over its cutover gate's window (twice its readiness window,
    at least 24h), so the verdict shown is the one `routes set` would apply.
    """
    rules, engine = _context()
    names = list(dict.fromkeys(capabilities)) or list(rules.capabilities)
    for name in names:
        if name not in rules.capabilities:
            raise Refused(f"unknown capability {name!r} (known: {', '.join(sorted(rules.capabilities))})")
    windows = _windows(rules, names, since, until)
    try:
        reports = build_reports(engine, windows)
    except sa.exc.OperationalError as exc:
        raise click.ClickException(f"cannot read the comparisons: {exc.orig}") from None
    entries = [judge(r, rules.capabilities[r.capability].readiness) for r in reports]
    text = _render(entries, fmt, terminal=out is None and sys.stdout.isatty())
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        ready = sum(e.verdict.ready for e in entries)
        click.echo(
            f"wrote {fmt} report to {out}: {len(entries)} capabilities, {ready} ready, {len(entries) - ready} not ready"
        )
    if fail_if_not_ready and not all(e.verdict.ready for e in entries):
        raise SystemExit(EXIT_NOT_READY)


def _render(entries: list[Judged], fmt: str, terminal: bool) -> str:
    now = datetime.now(UTC)
    if fmt == "html":
        return render_html(entries, now)
    if fmt == "json":
        return render_json(entries, now)
    if fmt == "csv":
        return render_csv(entries)
    return render_text(entries, terminal=terminal, width=shutil.get_terminal_size((140, 24)).columns)
