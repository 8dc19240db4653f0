"""Build upstream clients' configuration from the rules file, the same way for the facade and the event applier."""

from __future__ import annotations

from connectors.upstream import TlsConfig, UpstreamConfig
from core.rules import UpstreamSpec


def upstream_config(spec: UpstreamSpec, url_override: str | None = None) -> UpstreamConfig:
    """Turn a rules-file upstream into the client's configuration, with the environment's URL if given."""
    return UpstreamConfig(
        name=spec.name,
        base_url=(url_override or spec.url).rstrip("/"),
        connect_timeout=spec.connect_timeout_ms / 1000,
        read_timeout=spec.read_timeout_ms / 1000,
        max_concurrency=spec.max_concurrency,
        queue_timeout=spec.queue_timeout_ms / 1000,
        pool_size=spec.max_concurrency,
        retry_attempts=spec.retry_attempts,
        breaker_fail_max=spec.breaker_fail_max,
        breaker_reset_s=spec.breaker_reset_s,
        tls=TlsConfig(spec.tls.verify, spec.tls.client_cert, spec.tls.client_key),
    )
