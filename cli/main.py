"""The `strangler` console script: serve, up, demo, the route switchboard and the schema's upgrades."""

from __future__ import annotations

import os
import sys
import tempfile

import click

from cli.db import db
from cli.events import apply_events, events, relay
from cli.reconcile import reconcile
from cli.replicate import replicate
from cli.report import report
from cli.routes import routes
from cli.up import demo, up
from core.migrate import SchemaMismatch
from core.rules import RulesError, load_rules
from core.settings import Settings, SettingsError
from core.worker import WORKER_CLASS


def settings_or_exit() -> Settings:
    """Return settings from the environment, or print the problem and exit 2."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


class _Main(click.Group):
    """The command group; a control-plane database this code cannot use is reported as a one-line error."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except SchemaMismatch as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Main)
def main() -> None:
    """strangler: one facade in front of a legacy core, moved to the cloud one capability at a time."""


@main.command()
@click.option("--bind", default="127.0.0.1:8100", show_default=True, help="host:port to listen on")
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes")
@click.option("--threads", default=32, show_default=True, help="threads per worker (slow legacy calls wait here)")
@click.option(
    "--worker-class",
    default=WORKER_CLASS,
    show_default=True,
    envvar="STRANGLER_WORKER_CLASS",
    help="gunicorn worker class; `gthread` is the stock one the facade's worker refines",
)
def serve(bind: str, workers: int, threads: int, worker_class: str) -> None:
    """Run the facade under gunicorn (thread workers), configured by STRANGLER_* variables."""
    settings = settings_or_exit()
    if not settings.api_keys:
        raise click.ClickException("STRANGLER_API_KEYS is not set: the facade serves only authenticated clients")
    try:
        load_rules(settings.rules_path)
    except RulesError as exc:
        raise click.ClickException(f"rules refused: {exc}") from None
    # Metrics from every worker are merged through files in this directory.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="strangler-metrics-")
    argv = [
        sys.executable, "-m", "gunicorn", "facade.app:create_app_from_env()",
        "--bind", bind, "--worker-class", worker_class, "--workers", str(workers), "--threads", str(threads),
        "--keep-alive", "30", "--graceful-timeout", "10", "--timeout", "60", "--backlog", "2048",
        "--no-control-socket",  # its default path is shared by every gunicorn on the machine
        "--config", "python:facade.gunicorn_conf",
    ]  # fmt: skip
    os.execv(sys.executable, argv)


main.add_command(routes)
main.add_command(up)
main.add_command(demo)
main.add_command(relay)
main.add_command(apply_events)
main.add_command(events)
main.add_command(replicate)
main.add_command(reconcile)
main.add_command(report)
main.add_command(db)

if __name__ == "__main__":
    main()
