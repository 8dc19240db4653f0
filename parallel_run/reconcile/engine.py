"""Run a reconciliation: snapshots at a position the replicator has applied, range checksums, bisection, rows.

Both sides are read in REPEATABLE READ snapshots: legacy first (its WAL insert position taken inside the snapshot),
then the cloud store once the replicator's checkpoint has passed that position. Each query runs on both sides at
once; the table scans (checksum passes, row fetches) also run on `Options.slices` connections per side that share
that side's snapshot, each over its own pages (`slices`). Differences found that way may be changes still in
flight; `settle` re-checks them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial
from typing import Any, TypeVar

import psycopg

from parallel_run.reconcile import checksum, pyrows
from parallel_run.reconcile.bisect import (
    EMPTY,
    Cut,
    Key,
    Sums,
    differing,
    int_bounds,
    narrow,
    next_bounds,
    quantile_bounds,
)
from parallel_run.reconcile.catalog import load_specs, select_tables
from parallel_run.reconcile.compare import Row, compare_rows
from parallel_run.reconcile.lag import insert_lsn, nudge, wait_applied
from parallel_run.reconcile.model import Options, Result, TableResult
from parallel_run.reconcile.settle import settle
from parallel_run.reconcile.slices import SNAPSHOT, page_slices, share_snapshot
from parallel_run.reconcile.spec import SideSQL, TableSpec
from replication.pgoutput import lsn_to_str
from replication.source import connect

Conn = psycopg.Connection[Any]
T = TypeVar("T")
MAX_RANGES = 50_000
SAMPLE_ROWS = 200_000  # keys read to cut a large text-keyed table into ranges


class Progress:
    """Callbacks for a progress display; the base class shows nothing."""

    def started(self, tables: list[str]) -> None:
        """The run compares these tables (cloud names)."""

    def step(self, table: str, what: str) -> None:
        """A table moved on to the next query (counting, a checksum pass, fetching rows)."""

    def table_done(self, result: TableResult) -> None:
        """A table is compared (before re-checks)."""

    def note(self, text: str) -> None:
        """Something worth a log line: waiting for the replicator, a re-check round."""


class Sides:
    """Each side's snapshot connections (the first one leads) and threads: `both` and `sliced` run on both at once."""

    def __init__(self, legacy: list[Conn], cloud: list[Conn], pool: ThreadPoolExecutor) -> None:
        self.legacy, self.cloud, self.pool = legacy[0], cloud[0], pool
        self.conns = {"legacy": legacy, "cloud": cloud}
        self.parts: dict[tuple[str, str], list[str]] = {}  # (table, side) -> page slices

    def both(self, spec: TableSpec, fn: Callable[[Conn, SideSQL], T]) -> tuple[T, T]:
        """Run `fn` on each side's leading connection at once; return (legacy's answer, cloud's answer)."""
        theirs = self.pool.submit(fn, self.cloud, spec.cloud)
        ours = fn(self.legacy, spec.legacy)
        return ours, theirs.result()

    def sliced(
        self, spec: TableSpec, fn: Callable[[Conn, SideSQL, str], T], merge: Callable[[list[T]], T]
    ) -> tuple[T, T]:
        """Run `fn` on every page slice of both sides at once (a connection per slice); merge each side's answers."""
        jobs = {}
        for name, side in (("legacy", spec.legacy), ("cloud", spec.cloud)):
            conns = self.conns[name]
            parts = self.parts.get((spec.target, name))
            if parts is None:
                parts = self.parts[(spec.target, name)] = page_slices(conns[0], side.relation, len(conns))
            jobs[name] = [self.pool.submit(fn, conn, side, part) for conn, part in zip(conns, parts, strict=False)]
        legacy, cloud = ([f.result() for f in jobs[name]] for name in ("legacy", "cloud"))
        return merge(legacy), merge(cloud)


def reconcile(options: Options, progress: Progress | None = None) -> Result:
    """Compare every selected table; raise SpecError, LagError, SetupError or psycopg.Error when it cannot."""
    show = progress or Progress()
    started = time.monotonic()
    tables = select_tables(options.mapping, options.tables)
    slices = max(1, options.slices)
    with ExitStack() as stack:
        legacy_conns = [stack.enter_context(connect(options.source, "strangler-reconcile")) for _ in range(slices)]
        cloud_conns = [stack.enter_context(connect(options.target, "strangler-reconcile")) for _ in range(slices)]
        pool = stack.enter_context(ThreadPoolExecutor(2 * slices, thread_name_prefix="reconcile"))
        legacy, cloud = legacy_conns[0], cloud_conns[0]
        specs = load_specs(legacy, cloud, tables)
        show.started([s.target for s in specs])
        legacy.execute(SNAPSHOT)
        lsn = insert_lsn(legacy)  # inside the snapshot: every commit it sees lies below this position
        share_snapshot(legacy, legacy_conns[1:])  # the other legacy slices read that same snapshot
        applied = None
        if options.wait:
            with connect(options.source, "strangler-reconcile-heartbeat") as control:
                nudge(control)
            show.note(f"waiting for slot {options.slot} to apply the legacy position {lsn_to_str(lsn)}")
            applied = wait_applied(cloud, options.slot, lsn, options.wait_timeout_s)
        cloud.execute(SNAPSHOT)
        share_snapshot(cloud, cloud_conns[1:])
        sides = Sides(legacy_conns, cloud_conns, pool)
        results = []
        for spec in specs:
            result = compare_table(spec, sides, options, show)
            results.append(result)
            show.table_done(result)
        for conn in (*legacy_conns, *cloud_conns):
            conn.execute("ROLLBACK")
        rounds = 0
        if options.wait and any(r.diffs for r in results):
            rounds = settle(specs, results, legacy, cloud, options, show)
    return Result(
        results, lsn_to_str(lsn), lsn_to_str(applied) if applied is not None else None, options.wait, rounds,
        time.monotonic() - started,
    )  # fmt: skip


def compare_table(spec: TableSpec, sides: Sides, options: Options, show: Progress) -> TableResult:
    """Compare one table inside the open snapshots and return its candidate differences."""
    result = TableResult(spec.source, spec.target)
    if not spec.in_sql:
        result.mode = "python"
        result.note = f"compared in Python: no SQL form for the transform of {', '.join(spec.python_only)}"
        show.step(spec.target, "fetching every row (Python transforms)")
        ours, theirs = sides.both(spec, lambda c, s: _python_rows(c, s, spec))
        result.legacy_rows, result.cloud_rows = len(ours), len(theirs)
        result.fetched = len(ours) + len(theirs)
        result.diffs = compare_rows(spec.target, spec.columns, ours, theirs)
        return result
    show.step(spec.target, "sizing")
    estimate = max(sides.both(spec, checksum.estimate_rows))
    ranges = max(1, min(MAX_RANGES, math.ceil(estimate / options.bucket_rows)))
    first = _first_bounds(spec, sides, ranges, estimate)
    if first is None:
        return result  # empty on both sides
    bounds: list[Key] = first
    result.ranges = len(bounds) + 1
    cut: Cut | None = None
    fetch: list[Cut] = []
    while True:
        result.passes += 1
        show.step(spec.target, f"checksum pass {result.passes} over {len(bounds) + 1:,} ranges")
        ours_sums, theirs_sums = sides.sliced(
            spec, partial(checksum.bucket_sums, bounds=bounds, cut=cut), checksum.merge_sums
        )
        if result.passes == 1:  # the first pass sees every row: its counts are the tables' row counts
            result.legacy_rows = sum(s.count for s in ours_sums.values())
            result.cloud_rows = sum(s.count for s in theirs_sums.values())
        samples = _samples(spec, sides, bounds, ours_sums, theirs_sums, options) if spec.key_kind != "int" else None
        plan = narrow(bounds, ours_sums, theirs_sums, spec.key_kind, options.fetch_rows, options.fanout, samples)
        if not plan.split or plan.rows <= options.fetch_budget:
            fetch.append(Cut(tuple(bounds), tuple(sorted([*plan.fetch, *plan.split]))))
            break
        if plan.fetch:
            fetch.append(Cut(tuple(bounds), tuple(plan.fetch)))
        cut, bounds = Cut(tuple(bounds), tuple(sorted(plan.split))), list(next_bounds(plan.split))
    legacy_rows: dict[str, Row] = {}
    cloud_rows: dict[str, Row] = {}
    for part in (f for f in fetch if f.buckets):
        show.step(spec.target, f"fetching rows of {len(part.buckets):,} differing ranges")
        ours_rows, theirs_rows = sides.sliced(spec, partial(checksum.fetch_cut, cut=part), checksum.merge_rows)
        legacy_rows.update(ours_rows)
        cloud_rows.update(theirs_rows)
    result.fetched = len(legacy_rows) + len(cloud_rows)
    result.diffs = compare_rows(spec.target, spec.columns, legacy_rows, cloud_rows)
    return result


def _first_bounds(spec: TableSpec, sides: Sides, ranges: int, estimate: int) -> list[Key] | None:
    """Cut the key space by the cloud side's keys (the legacy side's when the cloud table is empty); None: empty."""
    for conn, side in ((sides.cloud, spec.cloud), (sides.legacy, spec.legacy)):
        if spec.key_kind == "int":
            low, high = checksum.key_span(conn, side)  # an index answers this on the cloud side
            if low is not None:
                return int_bounds(low, high + 1, ranges)
            continue
        pct = min(100.0, 100.0 * SAMPLE_ROWS / max(1, estimate))
        keys = checksum.quantiles(conn, side, ranges, None, pct).get(0, [])
        if not keys and pct < 100:
            keys = checksum.quantiles(conn, side, ranges, None).get(0, [])
        if keys:
            return quantile_bounds(sorted(set(keys)), ranges)
    return None


def _samples(
    spec: TableSpec, sides: Sides, bounds: list[Key], ours: dict[int, Sums], theirs: dict[int, Sums], options: Options
) -> dict[int, list[Key]]:
    big = [b for b in differing(ours, theirs)
           if max(ours.get(b, EMPTY).count, theirs.get(b, EMPTY).count) > options.fetch_rows]  # fmt: skip
    if not big:
        return {}
    cut = Cut(tuple(bounds), tuple(big))
    a, b = sides.both(spec, partial(checksum.quantiles, parts=options.fanout, cut=cut))
    return {k: sorted({*a.get(k, ()), *b.get(k, ())}) for k in big}


def _python_rows(conn: Conn, side: SideSQL, spec: TableSpec) -> dict[str, Row]:
    return pyrows.legacy_rows(conn, spec) if side is spec.legacy else pyrows.cloud_rows(conn, spec)
