"""`python -m sandbox {legacy,cloud} {init-db,serve}`: seed a sandbox database or serve a sandbox API."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from sandbox.run import KINDS, Kind, default_faults_file, serve_argv, service_env

_database_url = click.option(
    "--database-url",
    envvar="SANDBOX_DATABASE_URL",
    required=True,
    help="SQLAlchemy URL, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/bank (or SANDBOX_DATABASE_URL).",
)


def _init_db(kind: Kind, database_url: str, customers: int) -> None:
    started = time.monotonic()
    click.echo(f"{kind.name}: recreating schema and seeding {customers} customers ...", err=True)
    kind.init_db(database_url, customers)
    click.echo(f"{kind.name}: seeded {customers} customers in {time.monotonic() - started:.1f}s", err=True)


def _serve(kind: Kind, database_url: str, bind: str, workers: int, threads: int, faults_file: Path | None) -> None:
    faults = faults_file or default_faults_file(kind, bind)
    if faults_file is None:
        # The default file outlives the process: a fresh start must not inherit the last run's faults.
        faults.unlink(missing_ok=True)
    click.echo(f"{kind.name}: serving on http://{bind} (faults file {faults})", err=True)
    argv = serve_argv(kind, bind, workers, threads)
    os.execve(argv[0], argv, {**os.environ, **service_env(database_url, faults)})


def _kind_group(kind: Kind) -> click.Group:
    @click.group(name=kind.name, help=f"The {kind.name} sandbox service.")
    def group() -> None:
        pass

    @group.command("init-db", help=f"Drop and recreate the {kind.name} schema, then seed it deterministically.")
    @_database_url
    @click.option("--customers", type=click.IntRange(min=0), default=1000, show_default=True)
    def init_db(database_url: str, customers: int) -> None:
        _init_db(kind, database_url, customers)

    @group.command("serve", help=f"Serve the {kind.name} API under gunicorn (thread-based workers).")
    @_database_url
    @click.option("--bind", default="127.0.0.1:8000", show_default=True, help="HOST:PORT to listen on.")
    @click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
    @click.option("--threads", type=click.IntRange(min=1), default=16, show_default=True)
    @click.option(
        "--faults-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="JSON file shared by the workers for run-time fault injection (default: one in the temp dir).",
    )
    def serve(database_url: str, bind: str, workers: int, threads: int, faults_file: Path | None) -> None:
        _serve(kind, database_url, bind, workers, threads, faults_file)

    return group


@click.group(help="The sandbox world: a legacy core-banking system and a cloud-native service.")
def main() -> None:
    pass


for _kind in KINDS.values():
    main.add_command(_kind_group(_kind))


if __name__ == "__main__":
    sys.exit(main())
