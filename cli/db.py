"""`strangler db`: the control-plane database's schema revision, and the operator's step that upgrades it."""

from __future__ import annotations

import click
from rich.console import Console

from core.db import make_engine
from core.migrate import Migrations, upgrade
from core.settings import Settings, SettingsError


def _engine_url() -> str:
    try:
        return Settings.from_env().database_url
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def db() -> None:
    """The control-plane database's schema: show its revision, upgrade it to this code's."""


@db.command("upgrade")
def upgrade_command() -> None:
    """Bring the control-plane schema (STRANGLER_DATABASE_URL) to this code's revision; a no-op when it is there."""
    engine = make_engine(_engine_url(), pool_size=1)
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    console = Console(highlight=False)
    if before == after:
        console.print(f"the control-plane schema is at revision {after} already")
    else:
        console.print(f"the control-plane schema upgraded from revision {before or '(none)'} to {after}")


@db.command("current")
def current_command() -> None:
    """Print the control-plane schema's revision and this code's; exit 1 when they differ."""
    migrations = Migrations()
    engine = make_engine(_engine_url(), pool_size=1)
    try:
        with engine.connect() as conn:
            current = migrations.current(conn)
    finally:
        engine.dispose()
    head = migrations.head()
    Console(highlight=False).print(f"database {current or '(none)'}, this code {head}")
    if current != head:
        raise SystemExit(1)
