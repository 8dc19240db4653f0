"""Show the replicator's progress: rich bars and a live status line on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from replication.pgoutput import lsn_to_str
from replication.sinks import Sink, Stats
from replication.snapshot import SnapshotProgress

log = logging.getLogger("strangler.replication")


def describe(stats: Stats, rate_txs: float, rate_changes: float) -> str:
    """One line about the stream: what is applied, how fast, and how far behind."""
    return (
        f"applied {stats.applied_txs:,} tx / {stats.applied_changes:,} changes "
        f"({rate_txs:,.0f} tx/s, {rate_changes:,.0f} changes/s), checkpoint {lsn_to_str(stats.applied_lsn)}, "
        f"lag {stats.lag_bytes:,} B / {stats.lag_seconds() * 1000:,.0f} ms"
    )


class _Rates:
    def __init__(self) -> None:
        self.at, self.txs, self.changes = time.monotonic(), 0, 0

    def update(self, stats: Stats) -> tuple[float, float]:
        now = time.monotonic()
        span = max(1e-6, now - self.at)
        rates = ((stats.applied_txs - self.txs) / span, (stats.applied_changes - self.changes) / span)
        self.at, self.txs, self.changes = now, stats.applied_txs, stats.applied_changes
        return rates


class LogProgress(Sink):
    """Plain log lines: the role changes, snapshot chunks, and the stream's state every `every_s` seconds."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s, self._last, self._rates = every_s, 0.0, _Rates()

    def standby(self, slot: str) -> None:
        log.info("standby: another replicator holds slot %s; waiting to take over", slot)

    def active(self, slot: str) -> None:
        log.info("active: this replicator holds slot %s", slot)

    def tick(self, stats: Stats) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            log.info(describe(stats, *self._rates.update(stats)))

    def snapshot(self) -> SnapshotProgress:
        done: dict[str, list[int]] = {}

        def started(table: str, pages: int) -> None:
            done[table] = [0, pages]
            log.info("snapshot: copying %s (%d pages)", table, pages)

        def advanced(table: str, pages: int, rows: int) -> None:
            done[table][0] += pages
            log.info("snapshot: %s %d/%d pages, %d rows in this chunk", table, done[table][0], done[table][1], rows)

        def finished(table: str, rows: int) -> None:
            log.info("snapshot: %s done, %d rows", table, rows)

        return SnapshotProgress(started, advanced, finished)


class RichProgress(Sink):
    """Bars per snapshot table and a live status line, on a terminal."""

    def __init__(self, console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(), console=console or Console(stderr=True), transient=False,
        )  # fmt: skip
        self._stream: TaskID | None = None
        self._rates = _Rates()
        self.progress.start()

    def standby(self, slot: str) -> None:
        self._status(f"standby: another replicator holds slot {slot}; waiting")

    def active(self, slot: str) -> None:
        self._status(f"active on slot {slot}")

    def _status(self, text: str) -> None:
        if self._stream is None:
            self._stream = self.progress.add_task("stream", total=None, note=text)
        else:
            self.progress.update(self._stream, note=text)

    def tick(self, stats: Stats) -> None:
        self._status(describe(stats, *self._rates.update(stats)))

    def snapshot(self) -> SnapshotProgress:
        tasks: dict[str, Any] = {}

        def started(table: str, pages: int) -> None:
            tasks[table] = self.progress.add_task(f"snapshot {table}", total=pages, note="pages")

        def advanced(table: str, pages: int, rows: int) -> None:
            self.progress.update(tasks[table], advance=pages)

        def finished(table: str, rows: int) -> None:
            task = tasks[table]
            self.progress.update(task, completed=self.progress.tasks[task].total, note=f"{rows:,} rows")

        return SnapshotProgress(started, advanced, finished)

    def close(self) -> None:
        self.progress.stop()
