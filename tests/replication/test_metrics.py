"""The replicator's Prometheus metrics: applied counts, lag, retained WAL and snapshot rows, in their own registry."""

from __future__ import annotations

from collections.abc import Callable

from replication.metrics import MetricsSink
from replication.sinks import FanOut
from tests.replication.support import Pair, ThreadedReplicator


def test_metrics_follow_the_stream(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(customers=40)
    metrics = MetricsSink(pair.slot)
    replicator = ThreadedReplicator(
        pair.options(status_s=0.1), sink=FanOut([metrics]), snapshot_progress=metrics.snapshot()
    )
    value = metrics.registry.get_sample_value
    try:
        replicator.wait_for(lambda: pair.applied_lsn() > 0, "the snapshot")
        pair.sql("source", "UPDATE cbs.acctmast SET curbal = curbal + 1")
        pair.wait_caught_up(alive=replicator.alive)
        labels = {"slot": pair.slot}
        replicator.wait_for(lambda: (value("strangler_replication_applied_changes_total", labels) or 0) >= 40, "counts")
        replicator.wait_for(lambda: (value("strangler_replication_retained_wal_bytes", labels) or 0) > 0, "a tick")
        assert value("strangler_replication_applied_transactions_total", labels) >= 1
        assert value("strangler_replication_active", labels) == 1
        assert value("strangler_replication_lag_bytes", labels) is not None
        assert value("strangler_replication_snapshot_rows", {**labels, "table": "cbs.custmast"}) == 40
    finally:
        replicator.stop()
