"""Keep the parallel run's evidence in the control-plane DB so every facade instance feeds one report and guard.

Comparisons with their masked differences, learnt noise paths and skipped-shadow counts (SQLAlchemy Core, PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from core import db
from parallel_run.model import Comparison, Difference, WindowStats


def _aware(at: datetime) -> datetime:
    # A naive datetime from a caller is taken as UTC: the columns are timestamptz and the session zone may differ.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def is_noise(capability: Any, path: Any) -> Any:
    """SQL: the path is a learnt noise path of the capability or lies beneath one (as `compare.classify` decides)."""
    n = db.comparison_noise
    beneath = sa.or_(
        n.c.path == path, sa.func.starts_with(path, n.c.path + "."), sa.func.starts_with(path, n.c.path + "[")
    )
    return sa.select(sa.literal(1)).where(n.c.capability == capability, beneath).exists()


class ComparisonStore:
    """Write and read the parallel run's evidence; every method is one short transaction."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def record(self, comparisons: Sequence[Comparison]) -> None:
        """Insert a batch of comparisons and their differences in one transaction (all or none)."""
        if not comparisons:
            return
        t = db.comparisons
        rows = [
            {
                "at": _aware(c.at), "capability": c.capability, "request_id": c.request_id,
                "primary_side": c.primary_side, "shadow_side": c.shadow_side,
                "primary_status": c.primary_status, "shadow_status": c.shadow_status,
                "primary_ms": c.primary_ms, "shadow_ms": c.shadow_ms, "verdict": c.verdict, "critical": c.critical,
            }
            for c in comparisons
        ]  # fmt: skip
        with self._engine.begin() as conn:
            # One multi-row INSERT ... RETURNING per ~1000 rows; ids come back in the order of `rows`.
            ids = conn.execute(t.insert().returning(t.c.id, sort_by_parameter_order=True), rows).scalars().all()
            diffs = [row for cid, c in zip(ids, comparisons, strict=True) for row in _diff_rows(cid, c.differences)]
            if diffs:
                conn.execute(db.comparison_diffs.insert(), diffs)

    def purge_older_than(self, keep_s: float, limit: int = 1000, batches: int = 10) -> int:
        """Delete comparisons (with their differences) and skip counts older than `keep_s`; return comparisons gone.

        Up to `batches` batches of the `limit` oldest comparisons by id: comparisons are written in time order (a
        worker flushes every few seconds), so the first young one at the head ends the purge without a scan.
        """
        t = db.comparisons
        cutoff = db.seconds_ago(sa.bindparam("keep_s", type_=sa.Float))
        head = sa.select(t.c.id, t.c.at).order_by(t.c.id).limit(limit).cte("head")
        old = sa.delete(t).where(t.c.id == head.c.id, head.c.at < cutoff)  # differences follow: ON DELETE CASCADE
        skips = sa.delete(db.shadow_skips).where(db.shadow_skips.c.minute < cutoff)
        gone = 0
        with self._engine.connect() as conn:
            for _ in range(batches):
                with conn.begin():
                    deleted = conn.execute(old, {"keep_s": keep_s}).rowcount
                gone += deleted
                if deleted < limit:
                    break
            with conn.begin():
                conn.execute(skips, {"keep_s": keep_s})
        return gone

    def add_noise(self, capability: str, paths: Iterable[str], at: datetime) -> None:
        """Count one more sighting of each noise path of a capability, keeping when it was first and last seen."""
        # Sorted and distinct: one statement may not touch a row twice, and one lock order avoids deadlocks.
        unique = sorted(set(paths))
        if not unique:
            return
        at = _aware(at)
        t = db.comparison_noise
        stmt = pg_insert(t).values(
            [{"capability": capability, "path": p, "seen": 1, "first_seen": at, "last_seen": at} for p in unique]
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.capability, t.c.path],
            set_={
                "seen": t.c.seen + 1,
                "first_seen": sa.func.least(t.c.first_seen, stmt.excluded.first_seen),
                "last_seen": sa.func.greatest(t.c.last_seen, stmt.excluded.last_seen),
            },
        )
        with self._engine.begin() as conn:
            conn.execute(stmt)

    def noise_paths(self, capability: str) -> frozenset[str]:
        """Return every path learnt as noise for a capability."""
        t = db.comparison_noise
        with self._engine.connect() as conn:
            return frozenset(conn.execute(sa.select(t.c.path).where(t.c.capability == capability)).scalars())

    def add_skips(self, capability: str, reason: str, count: int, at: datetime) -> None:
        """Add `count` skipped shadows for a reason to the minute bucket holding `at`."""
        if count <= 0:
            return
        minute = _aware(at).astimezone(UTC).replace(second=0, microsecond=0)
        t = db.shadow_skips
        stmt = pg_insert(t).values(capability=capability, minute=minute, reason=reason, count=count)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.capability, t.c.minute, t.c.reason], set_={"count": t.c.count + stmt.excluded.count}
        )
        with self._engine.begin() as conn:
            conn.execute(stmt)

    def window(self, capability: str, since: datetime) -> WindowStats:
        """Count a capability's comparisons since a moment; a mismatch whose differences are all noise is not one."""
        c, d = db.comparisons, db.comparison_diffs
        on_noise = is_noise(c.c.capability, d.c.path)
        real_diff = (
            sa.select(sa.literal(1))
            .where(d.c.comparison_id == c.c.id)
            .where(sa.or_(d.c.critical, sa.not_(on_noise)))
            .exists()
        )
        any_diff = sa.select(sa.literal(1)).where(d.c.comparison_id == c.c.id).exists()
        is_mismatch = c.c.verdict == "mismatch"
        # A mismatch with no stored differences cannot be explained away by noise: it counts.
        counted = sa.and_(is_mismatch, sa.or_(c.c.critical, real_diff, sa.not_(any_diff)))

        def count_if(cond: Any) -> Any:
            return sa.func.count().filter(cond)

        query = sa.select(
            sa.func.count(),
            count_if(counted),
            count_if(sa.and_(is_mismatch, c.c.critical)),
            count_if(c.c.verdict == "shadow_error"),
            count_if(c.c.verdict == "shadow_timeout"),
            count_if(c.c.primary_status >= 500),
        ).where(c.c.capability == capability, c.c.at >= _aware(since))
        with self._engine.connect() as conn:
            row = conn.execute(query).one()
        return WindowStats(*(int(v) for v in row))


def _diff_rows(comparison_id: int, differences: Sequence[Difference]) -> list[dict[str, Any]]:
    """One row per path (the table's key): the first difference on a path, marked critical if any on it is."""
    by_path: dict[str, dict[str, Any]] = {}
    for diff in differences:
        row = by_path.get(diff.path)
        if row is None:
            by_path[diff.path] = {
                "comparison_id": comparison_id, "path": diff.path, "kind": diff.kind,
                "primary_value": diff.primary, "shadow_value": diff.shadow, "critical": diff.critical,
            }  # fmt: skip
        elif diff.critical:
            row["critical"] = True
    return list(by_path.values())
