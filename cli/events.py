"""`strangler relay` (outbox → Kafka) and the other commands of the events capability."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import click
import sqlalchemy as sa
from prometheus_client import start_http_server
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from connectors.applier import ApplierConfigRefused, ApplierOptions, EventApplier, build, build_parts
from connectors.applier_dlq import ReplayRefused, plan_replay, replay
from connectors.applier_store import PostgresApplierStore
from connectors.event_retention import Retention
from connectors.relay import BATCH_SIZE, OutboxRelay
from core.broker import topics_for
from core.db import make_engine
from core.migrate import create_schema
from core.rules import RulesError, load_rules
from core.settings import Settings, SettingsError
from facade.logs import configure_logging

# --- relay ----------------------------------------------------------------------------------------------------------


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """Yield an event that SIGTERM or SIGINT sets; the previous handlers come back afterwards."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _show_progress(relay: OutboxRelay, stop: threading.Event, console: Console) -> None:
    """Keep a one-line status (active or standby, published, backlog) on the terminal until `stop` is set."""
    with console.status("relay starting") as status:
        while not stop.wait(0.5):
            # One collection per refresh: each runs the backlog gauge's count in the database.
            sample = {s.name: s.value for family in relay.registry.collect() for s in family.samples}
            role = "active" if sample.get("strangler_relay_active") else "standby"
            status.update(
                f"relay {role}: published {sample.get('strangler_relay_published_total', 0):.0f}, "
                f"republished {sample.get('strangler_relay_republished_total', 0):.0f}, "
                f"backlog {sample.get('strangler_outbox_backlog', float('nan')):.0f}"
            )


def _pipeline_worker(role: str) -> tuple[Settings, str, Console, bool]:
    """Return settings, the Kafka address (refused clearly when unset), a console and whether it is a terminal."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    if not settings.kafka_bootstrap:
        raise click.ClickException(
            f"STRANGLER_KAFKA_BOOTSTRAP is not set: the {role} needs the Kafka bootstrap address "
            "(`strangler up` passes its embedded broker's)"
        )
    tty = sys.stderr.isatty()
    console = Console(stderr=True)
    if tty:  # a status line on a terminal, plain JSON logs otherwise
        logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(console=console)])
    else:
        configure_logging()
    return settings, settings.kafka_bootstrap, console, tty


@click.command("relay")
@click.option(
    "--batch-size", default=BATCH_SIZE, show_default=True, type=click.IntRange(1, 100_000), help="rows per round"
)
@click.option("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
@click.option("--metrics-addr", default="0.0.0.0", show_default=True, help="address for --metrics-port")
def relay(batch_size: int, metrics_port: int | None, metrics_addr: str) -> None:
    """Publish accepted updates from the outbox to Kafka until SIGTERM/SIGINT; a second relay waits as a standby."""
    settings, bootstrap, console, tty = _pipeline_worker("relay")
    try:
        rules = load_rules(settings.rules_path)
    except RulesError as exc:
        raise click.ClickException(str(exc)) from None
    engine = make_engine(settings.database_url, pool_size=2)  # the lock's session, and metric scrapes
    create_schema(engine)
    worker = OutboxRelay(
        engine,
        bootstrap,
        batch_size=batch_size,
        topics=topics_for(rules),
        republish_after_s=settings.republish_after_s,
        # Look for stale events a few times per deadline, but not more than once a second or less than every 5 s.
        watchdog_interval_s=min(5.0, max(1.0, settings.republish_after_s / 4)),
        retention=Retention(settings.events_retention_s) if settings.events_retention_s > 0 else None,
    )
    if metrics_port is not None:
        start_http_server(metrics_port, addr=metrics_addr, registry=worker.registry)
    with _stop_on_signals() as stop:
        progress = threading.Thread(target=_show_progress, args=(worker, stop, console), daemon=True)
        if tty:
            progress.start()
        try:
            worker.run(stop)
        finally:
            stop.set()
            engine.dispose()
    logging.getLogger("strangler.relay").info("relay stopped")


# --- the event applier and its dead letters -------------------------------------------------------------------------


def _applier_progress(applier: EventApplier, stop: threading.Event, console: Console) -> None:
    """Keep a one-line status (applied, retried, dead letters, keys in flight, lag) on the terminal until `stop`."""

    def total(name: str) -> float:
        return sum(s.value for m in applier.metrics.registry.collect() for s in m.samples if s.name == name)

    with console.status("applier joining its consumer group") as status:
        while not stop.wait(0.5):
            status.update(
                f"applier: applied {total('strangler_applier_applied_total'):.0f}, "
                f"retries {total('strangler_applier_retries_total'):.0f}, "
                f"dead letters {total('strangler_applier_dead_lettered_total'):.0f}, "
                f"keys in flight {applier.queues.keys_in_flight()}, lag {sum(applier.tracker.lag().values())}"
            )


@click.command("apply-events")
@click.option(
    "--workers", default=ApplierOptions.workers, show_default=True, type=click.IntRange(1, 256),
    help="keys applied at once",
)  # fmt: skip
@click.option("--group", default=ApplierOptions.group, show_default=True, help="Kafka consumer group")
@click.option("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
@click.option("--metrics-addr", default="0.0.0.0", show_default=True, help="address for --metrics-port")
@click.option(
    "--session-timeout-ms", default=ApplierOptions.session_timeout_ms, show_default=True,
    type=click.IntRange(1000, 300_000), help="how long the group waits for a silent member before rebalancing",
)  # fmt: skip
def apply_events(
    workers: int, group: str, metrics_port: int | None, metrics_addr: str, session_timeout_ms: int
) -> None:
    """Apply accepted updates from Kafka to the legacy API, in order per key, until SIGTERM/SIGINT."""
    settings, _, console, tty = _pipeline_worker("applier")
    try:
        world = build(settings, ApplierOptions(group=group, workers=workers, session_timeout_ms=session_timeout_ms))
    except (ApplierConfigRefused, RulesError) as exc:
        raise click.ClickException(str(exc)) from None
    except sa.exc.OperationalError as exc:
        raise click.ClickException(f"cannot reach the control-plane database: {exc.orig}") from None
    if metrics_port is not None:
        start_http_server(metrics_port, addr=metrics_addr, registry=world.applier.metrics.registry)
    with _stop_on_signals() as stop:
        if tty:
            threading.Thread(target=_applier_progress, args=(world.applier, stop, console), daemon=True).start()
        try:
            world.applier.run(stop)
        finally:
            stop.set()
            world.close()


@click.group("events")
def events() -> None:
    """Operate the events pipeline (updates accepted by the facade and applied to legacy)."""


@events.command("prune")
@click.option(
    "--older-than-days", type=click.FloatRange(0, min_open=True), default=None,
    help="applied longer ago than this [default: STRANGLER_EVENTS_RETENTION_S]",
)  # fmt: skip
def prune(older_than_days: float | None) -> None:
    """Remove applied updates past their retention now (the active relay also does it every 10 minutes)."""
    settings, store = _control_store()
    keep_s = settings.events_retention_s if older_than_days is None else older_than_days * 86400
    if keep_s <= 0:
        raise click.ClickException("STRANGLER_EVENTS_RETENTION_S is 0 (keep forever): say --older-than-days")
    try:
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            pruned = Retention(keep_s).prune_all(conn)
    finally:
        store.engine.dispose()
    click.echo(f"removed {pruned} applied update(s) older than {keep_s / 86400:g} days")


@events.group("dlq")
def dlq() -> None:
    """Dead letters: updates the applier gave up on, and records that were not updates at all."""


def _control_store() -> tuple[Settings, PostgresApplierStore]:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    engine = make_engine(settings.database_url, pool_size=1)
    create_schema(engine)
    return settings, PostgresApplierStore(engine)


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


@dlq.command("list")
@click.option("--pending", is_flag=True, help="only dead letters not replayed yet")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000), help="newest first")
def dlq_list(pending: bool, limit: int) -> None:
    """Show the dead letters, newest first."""
    _, store = _control_store()
    try:
        rows = store.dead_letters(limit=limit, pending_only=pending)
    finally:
        store.engine.dispose()
    console = Console(width=None if sys.stdout.isatty() else 200)
    if not rows:
        console.print("no dead letters" + (" waiting for a replay" if pending else ""))
        return
    table = Table("id", "event id", "capability / key", "reason", "failed at", "replayed at", box=None)
    for row in rows:
        table.add_row(
            str(row.id), row.event_id or "-", f"{row.capability or row.topic} / {row.key or '-'}", row.reason,
            _when(row.failed_at), _when(row.replayed_at),
        )  # fmt: skip
    console.print(table)


@dlq.command("replay")
@click.argument("letter_id", type=int)
@click.option("--yes", is_flag=True, help="replay even if newer updates of the same key were applied since")
def dlq_replay(letter_id: int, yes: bool) -> None:
    """Apply dead letter LETTER_ID's update to legacy now, through the applier's own apply path."""
    settings, store = _control_store()
    try:
        try:
            plan = plan_replay(store, letter_id)
        except ReplayRefused as exc:
            raise click.ClickException(str(exc)) from None
        envelope = plan.envelope
        if plan.newer_applied:
            click.echo(
                f"warning: {len(plan.newer_applied)} newer update(s) of {envelope.capability} key {envelope.key} "
                f"(sequence {', '.join(map(str, plan.newer_applied))}) were applied since sequence "
                f"{envelope.sequence}; replaying it may overwrite their values",
                err=True,
            )
            if not yes:
                click.confirm("replay anyway?", abort=True, err=True)
        try:
            _, caller, _, close = build_parts(settings)
        except (ApplierConfigRefused, RulesError) as exc:
            raise click.ClickException(str(exc)) from None
        try:
            result = replay(store, caller, plan)
        except ReplayRefused as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            close()
    finally:
        store.engine.dispose()
    if result.kind != "applied":
        detail = result.error.get("detail") or result.error.get("title") or result.reason
        raise click.ClickException(f"replay of event {envelope.id} failed again ({result.status}): {detail}")
    click.echo(f"event {envelope.id} ({envelope.capability} key {envelope.key}, sequence {envelope.sequence}) applied")
