"""How far the cloud store's replica lags behind legacy, as the replicator last reported it to the control plane."""

from __future__ import annotations

import sqlalchemy as sa

from core.db import replication_status


class ReplicaFreshness:
    """Keep the latest replication lag; unknown or stale reports count as too old for any bound."""

    def __init__(self, engine: sa.Engine, stale_after_s: float = 5.0) -> None:
        self.engine, self.stale_after_s = engine, stale_after_s
        self.lag_ms: float | None = None

    def refresh(self) -> None:
        """Read the worst lag over all slots (its report's age included), or None when any slot went silent."""
        age = sa.func.extract("epoch", sa.func.now() - replication_status.c.updated_at)
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(sa.func.max(replication_status.c.lag_seconds + age), sa.func.max(age), sa.func.count())
            ).one()
        worst, oldest_report, slots = row
        if not slots or worst is None or float(oldest_report) > self.stale_after_s:
            self.lag_ms = None
        else:
            self.lag_ms = float(worst) * 1000

    def within(self, max_lag_ms: int) -> bool:
        """Return True when the replica is known to be at most `max_lag_ms` behind."""
        return self.lag_ms is not None and self.lag_ms <= max_lag_ms
