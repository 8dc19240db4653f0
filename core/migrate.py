"""Bring the control-plane schema to this code's revision with Alembic, or refuse a database this code cannot use.

A new database gets every revision when a process first connects. A database behind this code is upgraded only by
`strangler db upgrade`, an operator's step: a process that finds one refuses to start and names that command, so
no web worker alters a production schema on its own. Tables created before migrations existed are adopted as the
first revision when their layout matches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from core.db import SCHEMA, AdvisoryLocks, metadata

_columns_in_database = sa.text("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = :s")


class SchemaMismatch(RuntimeError):
    """The control-plane database is not at this code's revision and cannot be used as it is."""


class SchemaBehind(SchemaMismatch):
    """The control-plane database is at an older revision: `strangler db upgrade` brings it to this code's."""


@dataclass(frozen=True)
class Migrations:
    """The control plane's revisions: the shipped ones, plus any `extra_locations` (tests add revisions there)."""

    extra_locations: tuple[str, ...] = ()

    def config(self, conn: sa.Connection | None = None) -> Config:
        """Return an Alembic config for these revisions that runs them on `conn`, in its transaction."""
        cfg = Config()
        location = str(files("core") / "migrations")
        cfg.set_main_option("script_location", location)
        cfg.set_main_option("version_locations", " ".join((f"{location}/versions", *self.extra_locations)))
        cfg.set_main_option("path_separator", "space")
        cfg.attributes["connection"] = conn
        return cfg

    def script(self) -> ScriptDirectory:
        """Return the revisions as Alembic reads them."""
        return ScriptDirectory.from_config(self.config())

    def head(self) -> str:
        """Return the newest revision (there is one line of revisions, never branches)."""
        head = self.script().get_current_head()
        assert head is not None, "no revisions under core/migrations/versions"
        return head

    def known(self, revision: str) -> bool:
        """Return whether `revision` is one of these revisions (a newer version of the code may have written it)."""
        try:
            return self.script().get_revision(revision) is not None
        except CommandError:
            return False

    def current(self, conn: sa.Connection) -> str | None:
        """Return the database's revision, or None if Alembic never ran on it."""
        context = MigrationContext.configure(conn, opts={"version_table_schema": SCHEMA})
        return context.get_current_revision()

    def upgrade(self, conn: sa.Connection, target: str = "head") -> None:
        """Apply the revisions after the database's, up to `target`, in the connection's transaction."""
        command.upgrade(self.config(conn), target)

    def stamp(self, conn: sa.Connection, target: str = "head") -> None:
        """Record the database as at `target` without running anything."""
        command.stamp(self.config(conn), target)


def create_schema(engine: sa.Engine, migrations: Migrations | None = None) -> None:
    """Make sure the control-plane database is at this code's revision: create a new one, refuse anything else.

    Safe to run concurrently from many processes. Raise SchemaBehind (naming `strangler db upgrade`) on an older
    revision, and SchemaMismatch on a newer one or on tables from before migrations that lack columns this code reads.
    """
    migrations = migrations or Migrations()
    with engine.begin() as conn:
        _lock(conn)
        current, head = migrations.current(conn), migrations.head()
        if current == head:
            return
        where = engine.url.render_as_string(hide_password=True)
        if current is None:
            _create_or_adopt(conn, migrations, where)
        elif not migrations.known(current):
            raise SchemaMismatch(
                f"the control-plane database at {where} is at revision {current}, which this code does not know "
                f"(its newest is {head}): a newer version of strangler wrote it"
            )
        else:
            raise SchemaBehind(
                f"the control-plane database at {where} is at revision {current}, this code needs {head}: "
                f"run `strangler db upgrade` (with the same STRANGLER_DATABASE_URL) before starting it"
            )


def upgrade(engine: sa.Engine, migrations: Migrations | None = None) -> tuple[str | None, str]:
    """Bring the control-plane database to this code's revision; return (revision before, revision after)."""
    migrations = migrations or Migrations()
    with engine.begin() as conn:
        _lock(conn)
        before = migrations.current(conn)
        if before is None:
            _create_or_adopt(conn, migrations, engine.url.render_as_string(hide_password=True))
        else:
            migrations.upgrade(conn)
        return before, migrations.head()


def _lock(conn: sa.Connection) -> None:
    # Several workers start at once; serialise schema work on an advisory lock held to the end of the transaction.
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(AdvisoryLocks.CONTROL_SCHEMA)))
    conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))


def _create_or_adopt(conn: sa.Connection, migrations: Migrations, where: str) -> None:
    """Run every revision on a database without control-plane tables; adopt tables created before migrations."""
    present = {(table, column) for table, column in conn.execute(_columns_in_database, {"s": SCHEMA})}
    if not present:
        migrations.upgrade(conn)
        return
    missing = [
        f"{table.name}.{column.name}"
        for table in metadata.sorted_tables
        for column in table.columns
        if (table.name, column.name) not in present
    ]
    if missing:
        raise SchemaMismatch(
            f"the control-plane database at {where} has tables from before migrations, of an older layout "
            f"(missing {', '.join(missing)}): no revision leads from it; use a new database"
        )
    # The first revision is the layout these tables already have; later ones still run.
    migrations.stamp(conn, migrations.script().get_base() or migrations.head())
    migrations.upgrade(conn)
