"""Freshness-bounded replica reads: a cloud read whose replica lags more than max_lag_ms is answered by legacy."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from core.db import replication_status
from core.procs import wait_until
from tests.stackclient import FacadeClient

PAYMENT = "/v1/payments/pay_unknown"


def report_lag(facade: FacadeClient, lag_seconds: float, age_seconds: float = 0) -> None:
    values = {"slot": "test_slot", "lag_seconds": lag_seconds, "lag_bytes": 0,
              "updated_at": sa.func.now() - sa.text(f"interval '{age_seconds} seconds'")}  # fmt: skip
    with facade.engine.begin() as conn:
        conn.execute(
            insert(replication_status).values(**values).on_conflict_do_update(index_elements=["slot"], set_=values)
        )


def test_cloud_reads_fall_back_to_legacy_while_the_replica_lags(facade: FacadeClient) -> None:
    try:
        report_lag(facade, 30.0)
        facade.set_route("payments.get", "cloud")
        wait_until(lambda: facade.answered_by(PAYMENT, "legacy", times=10), 5, what="lagging replica bypassed")
        report_lag(facade, 0.1)
        wait_until(lambda: facade.answered_by(PAYMENT, "cloud", times=10), 5, what="fresh replica used")
        report_lag(facade, 0.1, age_seconds=60)  # the replicator stopped reporting: lag unknown
        wait_until(lambda: facade.answered_by(PAYMENT, "legacy", times=10), 5, what="silent replicator bypassed")
        metrics = facade.request("GET", "/metrics").text
        assert 'strangler_stale_replica_fallbacks_total{capability="payments.get"}' in metrics
    finally:
        with facade.engine.begin() as conn:
            conn.execute(replication_status.delete())
