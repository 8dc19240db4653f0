"""The relay's terminal status line: what it shows, and that each refresh collects the relay's metrics only once."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from rich.console import Console

from cli.events import _show_progress
from core.procs import wait_until


class CountingBacklog(Collector):
    """Stands in for the backlog gauge, whose every collection is a count in the database."""

    def __init__(self) -> None:
        self.collections = 0

    def collect(self) -> Iterator[GaugeMetricFamily]:
        self.collections += 1
        yield GaugeMetricFamily("strangler_outbox_backlog", "rows", value=42)


class Relay:
    """The one part of a relay the status line reads: its registry (here with the counting backlog)."""

    def __init__(self) -> None:
        self.backlog = CountingBacklog()
        self.registry = CollectorRegistry()
        self.registry.register(self.backlog)
        Gauge("strangler_relay_active", "", registry=self.registry).set(1)
        Counter("strangler_relay_published", "", registry=self.registry).inc(7)
        Counter("strangler_relay_republished", "", registry=self.registry)


def test_each_refresh_shows_role_counts_and_backlog_from_one_collection() -> None:
    relay, stop, out = Relay(), threading.Event(), io.StringIO()
    shown = threading.Thread(target=_show_progress, args=(relay, stop, Console(file=out, force_terminal=True)))
    shown.start()
    try:
        wait_until(lambda: relay.backlog.collections >= 2, 10, interval=0.02, what="two refreshes")
    finally:
        stop.set()
        shown.join(5)
    assert "relay active: published 7, republished 0, backlog 42" in out.getvalue()
    # Two refreshes, two counts (a third refresh may slip in before the stop): one per sample shown made it eight.
    assert relay.backlog.collections in (2, 3)
