"""The control-plane schema's revisions: a new database is created at this code's revision, the revisions build
exactly the tables the code declares, and a database at another revision or layout is refused with what to do."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner

from cli.main import main
from core.db import SCHEMA, make_engine, metadata
from core.migrate import Migrations, SchemaBehind, SchemaMismatch, create_schema, upgrade

# A revision after the shipped head, as the next change to the schema would add one.
NEXT_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("next_feature", sa.Column("id", sa.BigInteger, primary_key=True), schema="strangler")


def downgrade() -> None:
    op.drop_table("next_feature", schema="strangler")
"""


@pytest.fixture
def engine(new_database: Callable[[str], str]) -> Iterator[sa.Engine]:
    engine = make_engine(new_database("schema"), pool_size=1)
    yield engine
    engine.dispose()


@pytest.fixture
def newer_code(tmp_path: Path) -> Migrations:
    """The shipped revisions plus one more: what the next version of the code will carry."""
    (tmp_path / "9001_next_feature.py").write_text(NEXT_REVISION.format(head=Migrations().head()))
    return Migrations(extra_locations=(str(tmp_path),))


def revision_of(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return Migrations().current(conn)


def test_a_new_database_is_created_at_this_codes_revision_and_again_is_harmless(engine: sa.Engine) -> None:
    create_schema(engine)
    create_schema(engine)  # every process does it at start

    assert revision_of(engine) == Migrations().head()


def test_the_revisions_build_exactly_the_tables_the_code_declares(engine: sa.Engine) -> None:
    create_schema(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "version_table_schema": SCHEMA,
                "include_schemas": True,
                "include_name": lambda name, type_, parents: type_ != "schema" or name == SCHEMA,
                "include_object": lambda obj, name, type_, reflected, compare_to: name != "alembic_version",
            },
        )
        assert compare_metadata(context, metadata) == []
        sequences = conn.execute(
            sa.text("SELECT sequencename FROM pg_sequences WHERE schemaname = :s"), {"s": SCHEMA}
        ).scalars()
        assert "route_version_seq" in set(sequences)  # autogenerate does not compare sequences


def test_tables_created_before_migrations_are_adopted_when_their_layout_is_current(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))
        metadata.create_all(conn)  # how every process created the schema before there were revisions

    create_schema(engine)

    assert revision_of(engine) == Migrations().head()


def test_tables_from_before_migrations_of_an_older_layout_are_refused_by_name(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))
        metadata.create_all(conn)
        conn.execute(sa.text("ALTER TABLE strangler.event_outbox DROP COLUMN txid"))  # the outbox before 7 Dec

    with pytest.raises(SchemaMismatch, match=r"missing event_outbox\.txid\)"):
        create_schema(engine)
    assert revision_of(engine) is None  # nothing was recorded


def test_a_database_behind_the_code_is_refused_until_the_operator_upgrades_it(
    engine: sa.Engine, newer_code: Migrations
) -> None:
    create_schema(engine)  # the database as the current code leaves it

    with pytest.raises(SchemaBehind, match=r"run `strangler db upgrade`"):
        create_schema(engine, newer_code)
    assert not sa.inspect(engine).has_table("next_feature", schema=SCHEMA)  # a process never upgrades on its own

    assert upgrade(engine, newer_code) == (Migrations().head(), "9001")
    create_schema(engine, newer_code)
    assert sa.inspect(engine).has_table("next_feature", schema=SCHEMA)


def test_a_database_written_by_newer_code_is_refused(engine: sa.Engine, newer_code: Migrations) -> None:
    upgrade(engine, newer_code)

    with pytest.raises(SchemaMismatch, match=r"at revision 9001, which this code does not know"):
        create_schema(engine)


def test_the_upgrade_command_creates_then_reports_the_revision_and_schema_errors_are_one_line(
    engine: sa.Engine, newer_code: Migrations
) -> None:
    env = {"STRANGLER_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    runner = CliRunner()
    head = Migrations().head()

    assert runner.invoke(main, ["db", "current"], env=env).exit_code == 1  # nothing there yet
    first = runner.invoke(main, ["db", "upgrade"], env=env)
    assert first.exit_code == 0 and f"from revision (none) to {head}" in first.output
    again = runner.invoke(main, ["db", "upgrade"], env=env)
    assert again.exit_code == 0 and f"at revision {head} already" in again.output
    current = runner.invoke(main, ["db", "current"], env=env)
    assert current.exit_code == 0 and f"database {head}, this code {head}" in current.output

    upgrade(engine, newer_code)
    refused = runner.invoke(main, ["routes", "list"], env=env)
    assert refused.exit_code == 1
    assert "Error: the control-plane database" in refused.output and "Traceback" not in refused.output
