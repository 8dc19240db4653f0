"""`strangler routes`: list, show, set, apply, history and rollback of per-capability routes, all audited."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from cli.gate import refusal
from core.db import make_engine
from core.migrate import create_schema
from core.routestore import PostgresRouteStore, RouteChangeError, RouteState, check_change
from core.rules import RulesError, RuleSet, load_rules
from core.settings import Settings, SettingsError
from parallel_run.gate import NotReady, gated_reason
from parallel_run.normalisers import check_compare_rules
from parallel_run.report.verdict import verdict_for


def _load(path: Path) -> RuleSet:
    """Load a rules file with its compare rules checked too (an unknown path syntax or normaliser is refused)."""
    rules = load_rules(path)
    check_compare_rules(rules)
    return rules


def _context() -> tuple[Settings, RuleSet, PostgresRouteStore]:
    try:
        settings = Settings.from_env()
        rules = _load(settings.rules_path)
    except (SettingsError, RulesError) as exc:
        raise click.ClickException(str(exc)) from None
    engine = make_engine(settings.database_url, pool_size=1)
    create_schema(engine)
    store = PostgresRouteStore(engine)
    store.seed(rules, actor=settings.actor)
    return settings, rules, store


def _mode_text(mode: str | None, percent: float | None) -> str:
    if mode is None:
        return "-"
    return f"canary {percent:g}%" if mode == "canary" else mode


def _capability(rules: RuleSet, name: str) -> None:
    if name not in rules.capabilities:
        known = ", ".join(sorted(rules.capabilities))
        raise click.ClickException(f"unknown capability {name!r} (known: {known})")


@click.group()
def routes() -> None:
    """Who answers each capability: legacy, cloud or canary; every change audited."""


@routes.command("list")
def list_routes() -> None:
    """Show every capability's live route."""
    _, rules, store = _context()
    current = store.current()
    table = Table("capability", "match", "critical", "mode", "version", "changed by", "changed at", "reason")
    for name, cap in rules.capabilities.items():
        s = current[name]
        table.add_row(
            name, f"{cap.method} {cap.path}", "yes" if cap.critical else "no", _mode_text(s.mode, s.percent),
            str(s.version), s.updated_by, f"{s.updated_at:%Y-%m-%d %H:%M:%S}" if s.updated_at else "", s.reason,
        )  # fmt: skip
    Console().print(table)


@routes.command()
@click.argument("capability")
def show(capability: str) -> None:
    """Show one capability's rule, live route and recent history."""
    _, rules, store = _context()
    _capability(rules, capability)
    cap, state = rules.capabilities[capability], store.current()[capability]
    console = Console()
    console.print(f"[bold]{capability}[/]  {cap.method} {cap.path}  (rules line {cap.line})")
    console.print(f"  mode: {_mode_text(state.mode, state.percent)}  version {state.version}")
    console.print(f"  critical: {cap.critical}  primary: {cap.primary}  secondary: {cap.secondary}")
    console.print(
        f"  idempotency: {cap.idempotency}  in doubt: {cap.in_doubt}  canary sticky by: {cap.canary.sticky_by}"
        f"{' (with a shadow of the other side)' if cap.canary.shadow else ''}"
    )
    p = cap.parallel
    console.print(
        f"  parallel: {cap.parallel_primary} answers, {cap.parallel_shadow} is shadowed"
        f"{' in dry run' if cap.is_write else ''}; {p.sample_percent:g}% sampled"
        f"{f', {p.noise_percent:g}% also asked twice for noise' if not cap.is_write else ''}"
        f", shadow timeout {p.shadow_timeout_ms} ms"
    )
    console.print(f"  readiness: {verdict_for(store.engine, cap).describe()}", highlight=False)
    _print_history(console, store, capability, 5)


@routes.command("set")
@click.argument("capability")
@click.option("--mode", required=True, help="legacy, cloud, canary or parallel")
@click.option("--percent", type=float, help="canary: share of keys answered by cloud (only grows a key's side)")
@click.option("--reason", required=True, help="why (goes into the audit trail)")
@click.option("--force", is_flag=True, help="give cloud more traffic although the readiness verdict is NOT READY")
def set_route(capability: str, mode: str, percent: float | None, reason: str, force: bool) -> None:
    """Change one capability's mode; every facade worker follows within a second.

    A change that gives the cloud side more callers (cloud, or a larger canary) is refused while the capability's
    parallel-run verdict is NOT READY, unless --force.
    """
    settings, rules, store = _context()
    _capability(rules, capability)
    before = store.current()[capability]
    cap = rules.capabilities[capability]
    wanted = percent if mode == "canary" and percent is not None else (before.percent if mode == "canary" else None)
    try:
        check_change(cap, mode, wanted or 0.0)  # a change that cannot be made is refused before it is judged
        reason = gated_reason(store.engine, cap, (before.mode, before.percent), (mode, wanted), reason, force)
        after = store.set(cap, mode, percent, settings.actor, reason)
    except NotReady as exc:
        raise refusal(exc) from None
    except RouteChangeError as exc:
        raise click.ClickException(str(exc)) from None
    _print_change(before, after)


@routes.command()
@click.argument("capability")
@click.option("--reason", required=True, help="why (goes into the audit trail)")
def rollback(capability: str, reason: str) -> None:
    """Send a capability back to legacy at once."""
    settings, rules, store = _context()
    _capability(rules, capability)
    before = store.current()[capability]
    after = store.set(rules.capabilities[capability], "legacy", None, settings.actor, f"rollback: {reason}")
    _print_change(before, after)


@routes.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--reason", default="applied from file", show_default=True)
@click.option("--yes", is_flag=True, help="apply without asking")
@click.option("--force", is_flag=True, help="apply changes that give cloud more traffic although NOT READY")
def apply(file: Path, reason: str, yes: bool, force: bool) -> None:
    """Apply the modes in FILE: validate it, show the diff, ask, then change each route (audited).

    Every change that gives the cloud side more callers passes the cutover gate first; one refusal applies nothing.
    """
    settings, _, store = _context()
    try:
        wanted = _load(file)
    except RulesError as exc:
        raise click.ClickException(f"refused: {exc}") from None
    changes = store.plan(wanted)
    console = Console()
    if not changes:
        console.print("no changes: every route already matches the file")
        return
    for change in changes:
        frm = _mode_text(change.from_mode, change.from_percent)
        console.print(f"  {change.capability}: {frm} -> {_mode_text(change.to_mode, change.to_percent)}")
    try:
        reasons = {
            change.capability: gated_reason(
                store.engine, wanted.capabilities[change.capability], (change.from_mode, change.from_percent),
                (change.to_mode, change.to_percent), reason, force,
            )
            for change in changes
        }  # fmt: skip
    except NotReady as exc:
        raise refusal(exc) from None
    if not yes and not click.confirm(f"apply {len(changes)} change(s)?", default=False):
        raise click.ClickException("nothing applied")
    for change in changes:
        cap = wanted.capabilities[change.capability]
        percent = change.to_percent if change.to_mode == "canary" else None
        try:
            store.set(cap, change.to_mode, percent, settings.actor, reasons[change.capability])
        except RouteChangeError as exc:
            raise click.ClickException(str(exc)) from None
    console.print(f"applied {len(changes)} change(s)")


@routes.command()
@click.argument("capability", required=False)
@click.option("--limit", default=50, show_default=True)
def history(capability: str | None, limit: int) -> None:
    """Show the audit trail (who, when, from -> to, why), newest first."""
    _, rules, store = _context()
    if capability:
        _capability(rules, capability)
    _print_history(Console(), store, capability, limit)


def _print_history(console: Console, store: PostgresRouteStore, capability: str | None, limit: int) -> None:
    table = Table("version", "at", "capability", "who", "from", "to", "reason")
    for e in store.history(capability, limit):
        table.add_row(
            str(e.version), f"{e.at:%Y-%m-%d %H:%M:%S}", e.capability, e.actor,
            _mode_text(e.from_mode, e.from_percent), _mode_text(e.to_mode, e.to_percent), e.reason,
        )  # fmt: skip
    console.print(table)


def _print_change(before: RouteState, after: RouteState) -> None:
    frm, to = _mode_text(before.mode, before.percent), _mode_text(after.mode, after.percent)
    Console().print(f"{after.capability}: {frm} -> {to} (version {after.version})")
