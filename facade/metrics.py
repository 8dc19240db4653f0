"""Prometheus metrics of one facade app, on its own registry (multiprocess-aware under gunicorn)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BREAKER_VALUES = {"closed": 0, "half-open": 1, "open": 2}


class FacadeMetrics:
    """Counters, histograms and gauges for requests, upstreams, breakers, idempotency, in-doubt writes and shadows."""

    def __init__(self, multiproc_dir: str | None = None) -> None:
        self.multiproc_dir = multiproc_dir
        self.registry = CollectorRegistry()
        r = self.registry
        labels = ("capability", "mode", "upstream")
        self.requests = Counter("strangler_requests", "Portal requests answered", (*labels, "status"), registry=r)
        self.latency = Histogram(
            "strangler_request_seconds", "Time to answer a portal request", labels, buckets=LATENCY_BUCKETS, registry=r
        )
        self.upstream_errors = Counter(
            "strangler_upstream_errors", "Upstream calls that failed", ("upstream", "kind"), registry=r
        )
        self.breaker = Gauge(
            "strangler_breaker_state",
            "Circuit breaker per upstream: 0 closed, 1 half-open, 2 open",
            ("upstream",),
            registry=r,
            multiprocess_mode="livemax",
        )
        self.idempotency = Counter(
            "strangler_idempotency", "Idempotency decisions", ("capability", "decision"), registry=r
        )
        self.in_doubt = Counter("strangler_in_doubt", "In-doubt writes by result", ("capability", "result"), registry=r)
        self.stale_fallbacks = Counter(
            "strangler_stale_replica_fallbacks",
            "Cloud-mode reads answered by legacy because the replica lagged more than max_lag_ms",
            ("capability",),
            registry=r,
        )
        self.replica_lag = Gauge(
            "strangler_replica_lag_seconds", "Replication lag as last reported", registry=r, multiprocess_mode="livemax"
        )
        self.comparisons = Counter(
            "strangler_comparisons", "Parallel-run comparisons by verdict", ("capability", "verdict"), registry=r
        )
        self.shadow_skips = Counter(
            "strangler_shadow_skips", "Calls not compared (queue_full, not_sampled, ...)", ("capability", "reason"),
            registry=r,
        )  # fmt: skip
        self.shadow_latency = Histogram(
            "strangler_shadow_seconds", "Time a shadow call took", ("capability", "upstream"), buckets=LATENCY_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.shadow_queue = Gauge(
            "strangler_shadow_queue",
            "Shadow calls waiting for a shadow thread",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.match_rate = Gauge(
            "strangler_comparison_match_rate",
            "Share of comparisons that matched over the guard window, all facade workers together (from the store)",
            ("capability",),
            registry=r,
            multiprocess_mode="livemax",
        )
        self.guard_rollbacks = Counter(
            "strangler_guard_rollbacks", "Canaries the guard sent back to legacy", ("capability",), registry=r
        )
        self.route_version = Gauge(
            "strangler_route_version", "Route table version in use", registry=r, multiprocess_mode="livemin"
        )

    def set_breaker(self, upstream: str, state: str) -> None:
        self.breaker.labels(upstream).set(BREAKER_VALUES.get(state, 2))

    def render(self) -> bytes:
        """Return the exposition text: every worker's figures under gunicorn, this process's otherwise."""
        if self.multiproc_dir:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiproc_dir)
            return generate_latest(registry)
        return generate_latest(self.registry)
