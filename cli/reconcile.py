"""`strangler reconcile`: compare legacy tables with their cloud copies through the mapping; optionally repair.

Exit codes: 0 no drift, 1 drift found (rows missing, extra, different or unsettled), 2 could not reconcile (bad
option or table, mapping refused, a database unreachable, the replicator behind or not running).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click
import psycopg

from parallel_run.reconcile.engine import Progress
from parallel_run.reconcile.engine import reconcile as run_reconcile
from parallel_run.reconcile.lag import LagError
from parallel_run.reconcile.model import Options, Result, TableResult
from parallel_run.reconcile.output import print_rich, to_csv, to_json, to_plain
from parallel_run.reconcile.spec import SpecError
from replication.config import ConfigError, load_mapping
from replication.source import Conninfo, SetupError, conninfo_of
from replication.transforms import TransformError

log = logging.getLogger("strangler.reconcile")


class Refused(click.ClickException):
    """The run could not be done: one clear line, exit 2."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # libpq's messages span lines: keep the refusal to one


class LogProgress(Progress):
    """Plain log lines on stderr, for a run without a terminal."""

    def started(self, tables: list[str]) -> None:
        log.info("reconciling %d tables: %s", len(tables), ", ".join(tables))

    def step(self, table: str, what: str) -> None:
        log.info("%s: %s", table, what)

    def table_done(self, result: TableResult) -> None:
        log.info("%s: %d legacy rows, %d cloud rows, %d candidate differences (%d rows fetched)", result.target,
                 result.legacy_rows, result.cloud_rows, len(result.diffs), result.fetched)  # fmt: skip

    def note(self, text: str) -> None:
        log.info("%s", text)


class RichProgress(Progress):
    """A rich progress bar over the tables, the current step as its description."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn
        from rich.progress import Progress as Bar

        self.bar = Bar(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       transient=True)  # fmt: skip
        self.task: Any = None

    def started(self, tables: list[str]) -> None:
        self.bar.start()
        self.task = self.bar.add_task("reconciling", total=len(tables))

    def step(self, table: str, what: str) -> None:
        self.bar.update(self.task, description=f"{table}: {what}")

    def table_done(self, result: TableResult) -> None:
        self.bar.advance(self.task)

    def note(self, text: str) -> None:
        if self.task is not None:
            self.bar.update(self.task, description=text)

    def stop(self) -> None:
        self.bar.stop()


def _conninfo(url: str | None, what: str, var: str) -> Conninfo:
    try:
        return conninfo_of(url, what, var)
    except SetupError as exc:
        raise Refused(str(exc)) from None


def _run(options: Options, progress: Progress) -> Result:
    try:
        return run_reconcile(options, progress)
    except (SpecError, LagError, SetupError, TransformError) as exc:
        raise Refused(str(exc)) from None
    except psycopg.Error as exc:
        lines = str(exc).strip().splitlines()
        raise Refused(f"a database refused: {lines[0] if lines else type(exc).__name__}") from None


def _render(result: Result, fmt: str, out: Path | None) -> None:
    if fmt == "json":
        text = to_json(result)
    elif fmt == "csv":
        text = to_csv(result)
    elif out is None and sys.stdout.isatty():
        from rich.console import Console

        print_rich(result, Console())
        return
    else:
        text = to_plain(result)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text)


@click.command()
@click.option("--table", "tables", multiple=True, help="a mapped table (legacy or cloud name); repeat; default all")
@click.option("--repair", is_flag=True, help="re-copy differing rows from legacy into the cloud store, then recheck")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), help="write the report here, not to stdout")
@click.option(
    "--source-url", envvar="STRANGLER_REPLICATION_SOURCE_URL", show_envvar=True, help="the legacy database (source)"
)
@click.option(
    "--target-url", envvar="STRANGLER_REPLICATION_TARGET_URL", show_envvar=True, help="the cloud store (target)"
)
@click.option(
    "--config",
    "--mapping",
    "config",
    envvar="STRANGLER_REPLICATION_CONFIG",
    show_envvar=True,
    type=click.Path(path_type=Path),
    help="mapping YAML (default: the shipped sandbox mapping)",
)
@click.option("--slot", help="the replicator's slot, whose checkpoint is waited for (default: the mapping's)")
@click.option("--no-wait", is_flag=True, help="compare at once, without waiting for the replicator to catch up")
@click.option("--wait-timeout", default=60.0, show_default=True, help="seconds to wait for the replicator")
@click.option("--rounds", default=10, show_default=True, help="re-checks of a differing row that is still changing")
@click.option("--progress", type=click.Choice(["auto", "rich", "plain"]), default="auto", show_default=True)
def reconcile(**opts: Any) -> None:
    """Compare legacy tables with their cloud copies through the mapping: counts, range checksums, then rows.

    Exit 0: no drift; 1: drift found; 2: could not reconcile.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        mapping = load_mapping(opts["config"])
    except ConfigError as exc:
        raise Refused(f"mapping refused: {exc}") from None
    options = Options(
        source=_conninfo(opts["source_url"], "source", "STRANGLER_REPLICATION_SOURCE_URL"),
        target=_conninfo(opts["target_url"], "target", "STRANGLER_REPLICATION_TARGET_URL"),
        mapping=mapping, slot=opts["slot"] or mapping.slot or "strangler", tables=tuple(opts["tables"]),
        wait=not opts["no_wait"], wait_timeout_s=opts["wait_timeout"], rounds=opts["rounds"],
    )  # fmt: skip
    rich = opts["progress"] == "rich" or (opts["progress"] == "auto" and sys.stderr.isatty())
    progress: Progress = RichProgress() if rich else LogProgress()
    try:
        result = _run(options, progress)
        if opts["repair"] and result.drift:
            from parallel_run.reconcile.repair import repair

            try:
                done = repair(options, result)
            except (SpecError, LagError, SetupError, TransformError, psycopg.Error) as exc:
                raise Refused(f"repair failed, nothing was changed: {str(exc).strip().splitlines()[0]}") from None
            for item in done:
                log.info("repaired %s: %d rows deleted, %d legacy rows copied", item.target, item.deleted, item.copied)
            result = _run(options, progress)
    finally:
        if isinstance(progress, RichProgress):
            progress.stop()
    _render(result, opts["fmt"], opts["out"])
    sys.exit(1 if result.drift else 0)


if __name__ == "__main__":
    reconcile()
