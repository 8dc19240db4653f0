"""`strangler replicate`: run CDC from the legacy PostgreSQL into the cloud store, and show a slot's status."""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
import psycopg
import psycopg2
import sqlalchemy as sa

from replication.applier import ApplyError
from replication.config import ConfigError, MappingConfig, load_mapping
from replication.metrics import MetricsSink
from replication.pgoutput import DecodeError
from replication.plan import IncompatibleChange
from replication.progress import LogProgress, RichProgress
from replication.replicator import Options, Replicator
from replication.sinks import FanOut, Sink
from replication.source import Conninfo, SetupError, conninfo_of
from replication.startup import SNAPSHOT_MODES
from replication.stream import StreamError
from replication.transforms import TransformError


class Refused(click.ClickException):
    """A clear one-line refusal (exit 1), never a traceback."""


class IncompatibleRefusal(Refused):
    """The source changed in a way the target cannot follow (exit 3)."""

    exit_code = 3


class ApplyRefusal(Refused):
    """The target refused a change (exit 4)."""

    exit_code = 4


def _mapping(config: Path | None) -> MappingConfig:
    try:
        return load_mapping(config)
    except ConfigError as exc:
        raise Refused(f"mapping refused: {exc}") from None


def _conninfo(url: str | None, what: str, var: str) -> Conninfo:
    try:
        return conninfo_of(url, what, var)
    except SetupError as exc:
        raise Refused(str(exc)) from None


def _common(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--source-url", envvar="STRANGLER_REPLICATION_SOURCE_URL", show_envvar=True,
                     help="the legacy database (source)"),
        click.option("--target-url", envvar="STRANGLER_REPLICATION_TARGET_URL", show_envvar=True,
                     help="the cloud store (target)"),
        click.option(
            "--config", "config", envvar="STRANGLER_REPLICATION_CONFIG", type=click.Path(path_type=Path),
            help="mapping YAML (default: the shipped sandbox legacy -> cloud mapping)", show_envvar=True,
        ),
        click.option("--slot", help="replication slot name (default: the mapping's, else strangler)"),
        click.option("--publication", help="publication name (default: the mapping's, else the slot name)"),
        click.option("--control-url", envvar="STRANGLER_DATABASE_URL", show_envvar=True,
                     help="control plane database, for strangler.replication_status"),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


@click.group()
def replicate() -> None:
    """CDC from the legacy PostgreSQL (pgoutput) into the cloud store, exactly once."""


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except IncompatibleChange as exc:
        raise IncompatibleRefusal(f"stopped: incompatible change on the source: {exc}") from None
    except ApplyError as exc:
        raise ApplyRefusal(f"stopped: the target refused a change: {exc}") from None
    except TransformError as exc:
        raise ApplyRefusal(f"stopped: a value cannot be carried: {exc}") from None
    except (DecodeError, StreamError) as exc:
        raise Refused(f"stopped: the stream broke the protocol: {exc}") from None
    except SetupError as exc:
        raise Refused(str(exc)) from None
    except (psycopg.Error, psycopg2.Error, sa.exc.SQLAlchemyError) as exc:
        raise Refused(f"stopped: a database refused: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _sinks(progress: str, control_url: str | None, slot: str, events: Sink | None, metrics: Sink | None) -> FanOut:
    from replication.status import StatusSink, StatusWriter

    rich = progress == "rich" or (progress == "auto" and sys.stderr.isatty())
    sinks: list[Sink] = [RichProgress() if rich else LogProgress()]
    if control_url:
        try:
            sinks.append(StatusSink(StatusWriter(control_url), slot))
        except Exception as exc:
            raise Refused(f"cannot use the control plane: {str(exc).splitlines()[0]}") from None
    sinks += [s for s in (events, metrics) if s is not None]
    return FanOut(sinks)


@replicate.command("run")
@_common
@click.option(
    "--snapshot",
    type=click.Choice(SNAPSHOT_MODES),
    default="initial",
    show_default=True,
    help="initial: copy on first start; never: stream only; when_needed: copy again if the slot is lost",
)
@click.option("--heartbeat-interval", default=5.0, show_default=True, help="seconds between source heartbeats")
@click.option("--status-interval", default=1.0, show_default=True, help="seconds between status updates")
@click.option("--batch-changes", default=20_000, show_default=True, help="commit a batch after this many changes")
@click.option("--batch-ms", default=50.0, show_default=True, help="... or after it is this old (at a commit)")
@click.option("--slot-wait", default=10.0, show_default=True, help="seconds to wait for a busy slot to be freed")
@click.option("--emit-events", is_flag=True, help="also publish Debezium-style change events to Kafka")
@click.option("--kafka-bootstrap", envvar="STRANGLER_KAFKA_BOOTSTRAP", show_envvar=True, help="Kafka bootstrap servers")
@click.option("--topic-prefix", default="strangler.cdc", show_default=True, help="topic = PREFIX.schema.table")
@click.option("--metrics-port", type=int, help="serve Prometheus metrics on this port")
@click.option("--progress", type=click.Choice(["auto", "rich", "plain"]), default="auto", show_default=True)
def run(**opts: Any) -> None:
    """Replicate until stopped (SIGTERM/SIGINT): snapshot, then stream; a second instance waits as standby."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    mapping = _mapping(opts["config"])
    source = _conninfo(opts["source_url"], "source", "STRANGLER_REPLICATION_SOURCE_URL")
    target = _conninfo(opts["target_url"], "target", "STRANGLER_REPLICATION_TARGET_URL")
    slot = opts["slot"] or mapping.slot or "strangler"
    options = Options(
        source=source, target=target, mapping=mapping, slot=slot,
        publication=opts["publication"] or mapping.publication or slot, snapshot=opts["snapshot"],
        heartbeat_s=opts["heartbeat_interval"], status_s=opts["status_interval"],
        batch_changes=opts["batch_changes"], batch_s=opts["batch_ms"] / 1000, slot_wait_s=opts["slot_wait"],
    )  # fmt: skip
    events: Sink | None = None
    if opts["emit_events"]:
        if not opts["kafka_bootstrap"]:
            raise Refused("--emit-events needs --kafka-bootstrap or STRANGLER_KAFKA_BOOTSTRAP")
        from replication.events import KafkaSink

        events = KafkaSink(opts["kafka_bootstrap"], opts["topic_prefix"])
    metrics = MetricsSink(slot, port=opts["metrics_port"]) if opts["metrics_port"] else None
    sink = _sinks(opts["progress"], opts["control_url"], slot, events, metrics)
    progress = sink.sinks[0]
    assert isinstance(progress, LogProgress | RichProgress)
    snapshot = progress.snapshot() + metrics.snapshot() if isinstance(metrics, MetricsSink) else progress.snapshot()
    replicator = Replicator(options, sink=sink, snapshot_progress=snapshot)

    def stop(signum: int, frame: object) -> None:
        replicator.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with _refusals():
            replicator.run()
    finally:
        sink.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@replicate.command("status")
@_common
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def status(**opts: Any) -> None:
    """Show the slot, the confirmed and applied LSN, the lag in bytes and seconds, and the WAL the slot retains."""
    from replication.status import read_status

    mapping = _mapping(opts["config"])
    source = _conninfo(opts["source_url"], "source", "STRANGLER_REPLICATION_SOURCE_URL")
    target = _conninfo(opts["target_url"], "target", "STRANGLER_REPLICATION_TARGET_URL")
    slot = opts["slot"] or mapping.slot or "strangler"
    with _refusals():
        report = read_status(source, target, slot, opts["control_url"])
    if opts["as_json"]:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"replication slot {slot}", show_header=False)
    for name, value in report.as_dict().items():
        text = "-" if value is None else f"{value:,}" if name.endswith("bytes") else str(value)
        table.add_row(name.replace("_", " "), text)
    Console().print(table)
    if not report.exists:
        _exit(f"slot {slot} does not exist on the source (run `strangler replicate run` to create it)")


def _exit(message: str) -> NoReturn:
    raise Refused(message)


if __name__ == "__main__":
    replicate()
