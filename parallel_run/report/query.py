"""Build a `CapabilityReport` from the comparison tables for `since <= at < until`, every figure aggregated in SQL.

The counting rules (what is a mismatch, what noise hides, what the match rate divides by) are stated in
`parallel_run/report/model.py`; this module is their only implementation. All queries of one call run in one
read-only REPEATABLE READ transaction, so the figures agree with each other while facades keep writing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa

from core.db import comparison_diffs as D
from core.db import comparison_noise as N
from core.db import comparisons as C
from core.db import shadow_skips as S
from parallel_run.report.model import CapabilityReport, Latency, NoiseField, PathExample, PathMismatch
from parallel_run.store import is_noise

EXAMPLES_PER_PATH = 3
ANSWERED = ("match", "mismatch")  # both sides answered; the other verdicts are shadow failures


Window = tuple[str, datetime, datetime]  # capability, since (inclusive), until (exclusive)


def build_reports(engine: sa.Engine, windows: Iterable[Window]) -> list[CapabilityReport]:
    """Return one report per (capability, since, until), in the order given, all read from one snapshot."""
    with engine.connect() as conn:
        snapshot = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with snapshot.begin():
            return [build_report(snapshot, name, since, until) for name, since, until in windows]


def build_report(conn: sa.Connection, capability: str, since: datetime, until: datetime) -> CapabilityReport:
    """Return one capability's report for `since <= at < until`, read through `conn`."""
    q = _Queries(capability, since, until)
    summary = conn.execute(q.summary()).one()
    if not summary.comparisons:
        return CapabilityReport(capability, since, until, skipped=q.read_skips(conn), noise=tuple(q.read_noise(conn)))
    return CapabilityReport(
        capability=capability,
        since=since,
        until=until,
        comparisons=summary.comparisons,
        matches=summary.matches,
        mismatches=summary.mismatches,
        shadow_errors=summary.shadow_errors,
        shadow_timeouts=summary.shadow_timeouts,
        critical_mismatches=summary.critical_mismatches,
        primary_errors=summary.primary_errors,
        shadow_failed=summary.shadow_failed,
        first_at=summary.first_at,
        last_at=summary.last_at,
        primary_side=summary.primary_side,
        shadow_side=summary.shadow_side,
        latency=Latency(summary.primary_p50, summary.primary_p99, summary.shadow_p50, summary.shadow_p99),
        skipped=q.read_skips(conn),
        paths=tuple(q.read_paths(conn)),
        noise=tuple(q.read_noise(conn)),
    )


class _Queries:
    """The SQL of one capability's report over one window."""

    def __init__(self, capability: str, since: datetime, until: datetime) -> None:
        self.capability = capability
        self.window = sa.and_(C.c.capability == capability, C.c.at >= since, C.c.at < until)
        self.skip_window = sa.and_(S.c.capability == capability, S.c.minute >= since, S.c.minute < until)
        # A difference counts unless its path is (beneath) noise; a critical one always counts.
        self.counts = sa.or_(D.c.critical, sa.not_(is_noise(capability, D.c.path)))

    def summary(self) -> sa.Select:
        answered = C.c.verdict.in_(ANSWERED)
        has = sa.exists().where(D.c.comparison_id == C.c.id)
        mismatch = sa.and_(
            answered,
            sa.or_(
                sa.exists().where(D.c.comparison_id == C.c.id, self.counts),
                C.c.critical,
                # Recorded as a mismatch with nothing on file to explain it away: it stays one.
                sa.and_(C.c.verdict == "mismatch", ~has),
            ),
        )
        critical = sa.or_(C.c.critical, sa.exists().where(D.c.comparison_id == C.c.id, D.c.critical))
        judged = sa.select(
            C.c.at, C.c.verdict, C.c.primary_side, C.c.shadow_side, C.c.primary_status, C.c.shadow_status,
            C.c.primary_ms, C.c.shadow_ms, answered.label("answered"), mismatch.label("mismatch"),
            critical.label("critical"),
        ).where(self.window).subquery("judged")  # fmt: skip
        j = judged.c
        count = sa.func.count
        return sa.select(
            count().label("comparisons"),
            count().filter(sa.and_(j.answered, ~j.mismatch)).label("matches"),
            count().filter(j.mismatch).label("mismatches"),
            count().filter(j.verdict == "shadow_error").label("shadow_errors"),
            count().filter(j.verdict == "shadow_timeout").label("shadow_timeouts"),
            count().filter(sa.and_(j.mismatch, j.critical)).label("critical_mismatches"),
            count().filter(j.primary_status >= 500).label("primary_errors"),
            count().filter(sa.or_(j.shadow_status.is_(None), j.shadow_status >= 500)).label("shadow_failed"),
            sa.func.min(j.at).label("first_at"),
            sa.func.max(j.at).label("last_at"),
            sa.func.mode().within_group(j.primary_side).label("primary_side"),
            sa.func.mode().within_group(j.shadow_side).label("shadow_side"),
            sa.func.percentile_cont(0.5).within_group(j.primary_ms).label("primary_p50"),
            sa.func.percentile_cont(0.99).within_group(j.primary_ms).label("primary_p99"),
            sa.func.percentile_cont(0.5).within_group(j.shadow_ms).label("shadow_p50"),
            sa.func.percentile_cont(0.99).within_group(j.shadow_ms).label("shadow_p99"),
        )

    def _counted_diffs(self) -> sa.Subquery:
        return (
            sa.select(
                D.c.path,
                D.c.kind,
                D.c.critical,
                D.c.primary_value,
                D.c.shadow_value,
                C.c.id,
                C.c.at,
                C.c.request_id,
            )
            .join(C, C.c.id == D.c.comparison_id)
            .where(self.window, C.c.verdict.in_(ANSWERED), self.counts)
            .subquery("counted")
        )

    def read_paths(self, conn: sa.Connection) -> list[PathMismatch]:
        counted = self._counted_diffs().c
        rank = sa.func.row_number().over(
            partition_by=counted.path, order_by=(counted.critical.desc(), counted.at.desc(), counted.id.desc())
        )
        ranked = sa.select(
            counted.path, counted.request_id, counted.at, counted.primary_value, counted.shadow_value,
            rank.label("rank"),
        ).subquery("ranked")  # fmt: skip
        examples: dict[str, list[PathExample]] = defaultdict(list)
        rows = conn.execute(sa.select(ranked).where(ranked.c.rank <= EXAMPLES_PER_PATH).order_by(ranked.c.rank))
        for row in rows:
            examples[row.path].append(PathExample(row.request_id, row.at, row.primary_value, row.shadow_value))
        counted = self._counted_diffs().c
        count = sa.func.count()
        by_path = (
            sa.select(
                counted.path,
                sa.func.array_agg(sa.distinct(counted.kind)).label("kinds"),
                count.label("n"),
                count.filter(counted.critical).label("critical_count"),
                sa.func.min(counted.at).label("first_seen"),
                sa.func.max(counted.at).label("last_seen"),
                is_noise(self.capability, counted.path).label("noisy"),
            )
            .group_by(counted.path)
            .order_by(count.desc(), counted.path.collate("C"))
        )
        return [
            PathMismatch(
                row.path,
                tuple(sorted(row.kinds)),
                row.n,
                row.critical_count,
                row.first_seen,
                row.last_seen,
                tuple(examples[row.path]),
                bool(row.noisy),
            )
            for row in conn.execute(by_path)
        ]

    def read_noise(self, conn: sa.Connection) -> list[NoiseField]:
        on_path = sa.and_(D.c.comparison_id == C.c.id, D.c.path == N.c.path, self.window, C.c.verdict.in_(ANSWERED))
        in_window = sa.select(sa.func.count()).select_from(D).join(C, C.c.id == D.c.comparison_id).where(on_path)
        critical = sa.exists().where(on_path, D.c.critical)
        query = (
            sa.select(
                N.c.path,
                N.c.seen,
                N.c.first_seen,
                N.c.last_seen,
                in_window.scalar_subquery().label("in_window"),
                critical.label("critical"),
            )
            .where(N.c.capability == self.capability)
            .order_by(N.c.seen.desc(), N.c.path.collate("C"))
        )
        return [
            NoiseField(row.path, row.seen, row.first_seen, row.last_seen, row.in_window, bool(row.critical))
            for row in conn.execute(query)
        ]

    def read_skips(self, conn: sa.Connection) -> dict[str, int]:
        query = (
            sa.select(S.c.reason, sa.func.sum(S.c.count).label("n"))
            .where(self.skip_window)
            .group_by(S.c.reason)
            .order_by(S.c.reason)
        )
        return {row.reason: int(row.n) for row in conn.execute(query)}
