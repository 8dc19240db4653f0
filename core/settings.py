"""Typed settings built from STRANGLER_* environment variables when asked, never at import time."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A STRANGLER_* variable is missing or malformed; the message names it."""


def parse_api_keys(text: str, variable: str = "STRANGLER_API_KEYS") -> dict[str, str]:
    """Parse "client:token,client2:token2" into {token: client}; raise SettingsError on a malformed pair."""
    keys: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        client, sep, token = pair.partition(":")
        if not sep or not client or len(token) < 16:
            raise SettingsError(f"{variable}: each entry is client:token with a token of 16+ characters")
        keys[token] = client
    return keys


@dataclass(frozen=True)
class Settings:
    """Everything a facade, CLI command or worker needs to know about its environment."""

    database_url: str
    rules_path: Path = Path("routing_rules.yaml")
    upstream_urls: Mapping[str, str] = field(default_factory=dict)
    api_keys: Mapping[str, str] = field(default_factory=dict)
    admin_keys: Mapping[str, str] = field(default_factory=dict)  # the admin API's callers (none: it is switched off)
    max_body_bytes: int = 64 * 1024
    idempotency_ttl_s: int = 24 * 3600
    idempotency_lease_s: float = 60.0
    route_poll_s: float = 0.25
    in_doubt_grace_s: float = 30.0
    watchdog_interval_s: float = 1.0
    actor: str = "unknown"
    kafka_bootstrap: str | None = None  # None: development commands start the embedded broker
    republish_after_s: float = 30.0  # an accepted update not applied by then is published again
    # Applied updates are kept this long (status API, relay's records), then pruned by the relay; 0 keeps them forever.
    # Longer than Kafka's default topic retention (7 days): an event still on a topic is still known.
    events_retention_s: float = 14 * 86400.0
    # Parallel-run evidence (comparisons, their differences, skip counts) is kept this long; 0 keeps it forever.
    # Keep it well beyond twice the longest observation window: the cutover gate judges max(2 x window, 24 h).
    comparisons_retention_s: float = 30 * 86400.0
    shadow_workers: int = 4  # threads per facade worker that make shadow calls, off the caller's path
    shadow_queue: int = 1000  # shadow calls waiting for those threads; beyond it a comparison is skipped and counted
    guard_interval_s: float = 2.0  # how often each worker checks canary guards and refreshes match-rate gauges

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from STRANGLER_* variables (the process environment by default) plus overrides."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if "STRANGLER_DATABASE_URL" in env:
            values["database_url"] = env["STRANGLER_DATABASE_URL"]
        if "STRANGLER_RULES" in env:
            values["rules_path"] = Path(env["STRANGLER_RULES"])
        values["upstream_urls"] = {
            key[len("STRANGLER_UPSTREAM_") : -len("_URL")].lower(): value
            for key, value in env.items()
            if key.startswith("STRANGLER_UPSTREAM_") and key.endswith("_URL")
        }
        if "STRANGLER_API_KEYS" in env:
            values["api_keys"] = parse_api_keys(env["STRANGLER_API_KEYS"])
        if "STRANGLER_ADMIN_KEYS" in env:
            values["admin_keys"] = parse_api_keys(env["STRANGLER_ADMIN_KEYS"], "STRANGLER_ADMIN_KEYS")
            if set(values["admin_keys"]) & set(values.get("api_keys", {})):
                # A portal client holding an admin token could move routes: the two sets must not meet.
                raise SettingsError("STRANGLER_ADMIN_KEYS: a token is also a STRANGLER_API_KEYS token")
        numeric = {
            "STRANGLER_MAX_BODY_BYTES": ("max_body_bytes", int),
            "STRANGLER_IDEMPOTENCY_TTL_S": ("idempotency_ttl_s", int),
            "STRANGLER_IDEMPOTENCY_LEASE_S": ("idempotency_lease_s", float),
            "STRANGLER_ROUTE_POLL_S": ("route_poll_s", float),
            "STRANGLER_IN_DOUBT_GRACE_S": ("in_doubt_grace_s", float),
            "STRANGLER_WATCHDOG_INTERVAL_S": ("watchdog_interval_s", float),
            "STRANGLER_REPUBLISH_AFTER_S": ("republish_after_s", float),
            "STRANGLER_EVENTS_RETENTION_S": ("events_retention_s", float),
            "STRANGLER_COMPARISONS_RETENTION_S": ("comparisons_retention_s", float),
            "STRANGLER_SHADOW_WORKERS": ("shadow_workers", int),
            "STRANGLER_SHADOW_QUEUE": ("shadow_queue", int),
            "STRANGLER_GUARD_INTERVAL_S": ("guard_interval_s", float),
        }
        for var, (name, kind) in numeric.items():
            if var in env:
                try:
                    values[name] = kind(env[var])
                except ValueError:
                    raise SettingsError(f"{var}={env[var]!r} is not a number") from None
        for var in ("STRANGLER_EVENTS_RETENTION_S", "STRANGLER_COMPARISONS_RETENTION_S"):
            if values.get(numeric[var][0], 0.0) < 0:
                raise SettingsError(f"{var} is how many seconds to keep (0: forever), not {env[var]}")
        if env.get("STRANGLER_KAFKA_BOOTSTRAP"):
            values["kafka_bootstrap"] = env["STRANGLER_KAFKA_BOOTSTRAP"]
        values["actor"] = env.get("STRANGLER_ACTOR") or env.get("SUDO_USER") or env.get("USER") or "unknown"
        values.update(overrides)
        if "database_url" not in values:
            raise SettingsError("STRANGLER_DATABASE_URL is not set (the control-plane database)")
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed."""
        return replace(self, **changes)
