"""The applier's Prometheus metrics, on its own registry (served by `strangler apply-events --metrics-port`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class _LagCollector(Collector):
    """Reads consumer lag per partition from the applier's own offset tracking at scrape time."""

    def __init__(self, lag: Callable[[], Mapping[tuple[str, int], int]]) -> None:
        self._lag = lag

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family({})

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield self._family(self._lag())

    @staticmethod
    def _family(lag: Mapping[tuple[str, int], int]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "strangler_consumer_lag",
            "Records consumed but not yet committed, per partition (last consumed + 1 - committed, tracked by the "
            "applier; the broker's high watermarks are not trusted)",
            labels=["topic", "partition"],
        )
        for (topic, partition), value in sorted(lag.items()):
            family.add_metric([topic, str(partition)], float(value))
        return family


class ApplierMetrics:
    """Counters, the accept → applied histogram and gauges of one applier process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.applied = Counter("strangler_applier_applied", "Events applied to legacy", ["capability"], registry=r)
        self.failed = Counter(
            "strangler_applier_failed", "Events settled as failed (permanent error or out of attempts)",
            ["capability"], registry=r,
        )  # fmt: skip
        self.retried = Counter(
            "strangler_applier_retries", "Attempts that failed for now and were rescheduled", ["capability"], registry=r
        )
        self.skipped = Counter(
            "strangler_applier_skipped", "Deliveries skipped because the event was already settled (redeliveries)",
            ["capability"], registry=r,
        )  # fmt: skip
        self.dead_lettered = Counter(
            "strangler_applier_dead_lettered", "Records sent to a dead-letter topic, by why",
            ["topic", "why"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "strangler_events_apply_latency_seconds", "From accepted by the facade to applied to legacy",
            ["capability"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.inflight_keys = Gauge("strangler_applier_inflight_keys", "Keys with unsettled work", registry=r)
        self.queued = Gauge("strangler_applier_queued_events", "Records waiting in the per-key queues", registry=r)
        # 0 until the group has given this consumer its partitions: what a start-up waits for before sending work.
        self.assigned = Gauge("strangler_applier_assigned_partitions", "Partitions this applier owns", registry=r)

    def watch(
        self,
        lag: Callable[[], Mapping[tuple[str, int], int]],
        inflight_keys: Callable[[], int],
        queued: Callable[[], int],
        assigned: Callable[[], int],
    ) -> None:
        """Read lag, in-flight keys, queue depth and owned partitions from the running applier at every scrape."""
        self.registry.register(_LagCollector(lag))
        self.inflight_keys.set_function(lambda: float(inflight_keys()))
        self.queued.set_function(lambda: float(queued()))
        self.assigned.set_function(lambda: float(assigned()))
