"""Prometheus metrics of one replicator: lag, applied rows and transactions, snapshot progress, retained WAL."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from replication.sinks import Sink, Stats
from replication.snapshot import SnapshotProgress


class MetricsSink(Sink):
    """Keep the replicator's metrics in their own registry, served on `port` when one is given."""

    def __init__(self, slot: str, port: int | None = None, addr: str = "127.0.0.1") -> None:
        self.registry = CollectorRegistry()
        labels, reg = ["slot"], self.registry
        self.lag_bytes = Gauge("strangler_replication_lag_bytes", "Source WAL not yet applied", labels, registry=reg)
        self.lag_seconds = Gauge(
            "strangler_replication_lag_seconds", "Now minus the last applied source commit (0 when caught up)",
            labels, registry=reg,
        )  # fmt: skip
        self.retained = Gauge("strangler_replication_retained_wal_bytes", "WAL the slot keeps", labels, registry=reg)
        self.is_active = Gauge("strangler_replication_active", "1 when this replicator holds the slot", labels,
                               registry=reg)  # fmt: skip
        self.txs = Counter("strangler_replication_applied_transactions", "Source transactions applied", labels,
                           registry=reg)  # fmt: skip
        self.changes = Counter("strangler_replication_applied_changes", "Row changes applied", labels, registry=reg)
        self.snapshot_rows = Gauge("strangler_replication_snapshot_rows", "Rows copied by the snapshot",
                                   ["slot", "table"], registry=reg)  # fmt: skip
        self.slot = slot
        if port is not None:
            start_http_server(port, addr=addr, registry=reg)

    def standby(self, slot: str) -> None:
        self.is_active.labels(slot).set(0)

    def active(self, slot: str) -> None:
        self.is_active.labels(slot).set(1)

    def committed(self, txs: int, changes: int) -> None:
        self.txs.labels(self.slot).inc(txs)
        self.changes.labels(self.slot).inc(changes)

    def tick(self, stats: Stats) -> None:
        self.lag_bytes.labels(self.slot).set(stats.lag_bytes)
        self.lag_seconds.labels(self.slot).set(stats.lag_seconds())
        self.retained.labels(self.slot).set(stats.retained_wal_bytes)

    def snapshot(self) -> SnapshotProgress:
        """Progress callbacks that count the snapshot's rows per table."""
        counted: dict[str, float] = {}

        def advanced(table: str, pages: int, rows: int) -> None:
            counted[table] = counted.get(table, 0) + rows
            self.snapshot_rows.labels(self.slot, table).set(counted[table])

        return SnapshotProgress(advanced=advanced)
