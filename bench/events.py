"""Events benchmark: accept latency (events vs legacy mode), relay vs a bare producer, accept→applied latency at 200/s.

Run: `make bench-events` (or `.venv/bin/python -m bench.events`). Everything starts and stops inside one run:
PostgreSQL, the sandbox legacy core, the embedded broker, the facade, the relay and the applier.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa
from confluent_kafka import Producer

from bench.cpu import CpuMeter
from bench.loadgen import percentile
from cli.stack import Stack, StackOptions
from connectors.relay import OutboxRelay
from core.broker import ensure_topics
from core.db import event_outbox, event_requests, make_engine
from core.events import Envelope
from core.outbox import published_at as outbox_published_at
from core.outbox import unpublished
from core.procs import wait_until

RESULTS = Path(__file__).resolve().parent / "results"
RELAY_ROWS = 100_000
RELAY_ROUNDS = 3
PRODUCER = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "batch.size": 1_000_000,
    "compression.type": "none",
}


def log(line: str) -> None:
    print(f"[events-bench] {line}", file=sys.stderr, flush=True)


def paced(rate: float, seconds: float, threads: int, call: Callable[[int], None]) -> None:
    """Call `call(i)` at `rate` per second for `seconds`, spread over `threads` threads on a shared schedule."""
    total = int(rate * seconds)
    start = time.perf_counter() + 0.2

    def worker(offset: int) -> None:
        for i in range(offset, total, threads):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            call(i)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


class PortalClient:
    """PATCHes JSON on one keep-alive connection per thread; returns (status, body).

    The load generator shares the two cores with the stack it measures: plain http.client costs a fraction of the
    CPU per call that requests does (~1.5 ms each at 200/s), CPU the stack would otherwise not get.
    """

    def __init__(self, base_url: str, api_key: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.local = threading.local()

    def patch(self, path: str, body: Any) -> tuple[int, bytes]:
        data = json.dumps(body).encode()
        for attempt in (1, 2):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                conn.request("PATCH", path, body=data, headers=self.headers)
                response = conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionError):  # an idle keep-alive connection was closed
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


class EventsBench:
    """The three measurements against one running stack."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.engine = make_engine(stack.urls["control"], pool_size=4)
        self.client = PortalClient(stack.urls["facade"], stack.api_key)
        self.figures: dict[str, Any] = {}

    def routes(self, *args: str) -> None:
        env = {**os.environ, **self.stack.facade_env}
        subprocess.run([sys.executable, "-m", "cli.main", "routes", *args], env=env, check=True, capture_output=True)

    def faults(self, **faults: Any) -> None:
        requests.put(self.stack.urls["legacy"] + "/__admin/faults", json=faults, timeout=5).raise_for_status()

    def accept_latency(self, mode: str, n: int = 400, rate: float = 40.0) -> dict[str, float]:
        """Latency of PATCH profile as the caller sees it, at a modest fixed rate."""
        self.routes("set", "profile.update", "--mode", mode, "--reason", f"benchmark: {mode} accept latency")
        path = "/v1/customers/{}/profile"
        expect = 202 if mode == "events" else 200
        wait_until(lambda: self.client.patch(path.format(1), {"phone": "+1 000"})[0] == expect, 10)
        latencies: list[float] = []
        errors = 0
        lock = threading.Lock()

        def call(i: int) -> None:
            nonlocal errors
            t0 = time.perf_counter()
            status, _ = self.client.patch(path.format(1 + i % 500), {"phone": f"+47 {i:07d}"})
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                latencies.append(ms)
                errors += status != expect

        paced(rate, n / rate, 8, call)
        latencies.sort()
        return {"p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99), "errors": errors, "n": n}

    def relay_vs_bare(self, rounds: int = RELAY_ROUNDS) -> dict[str, Any]:
        """Drain RELAY_ROWS outbox rows with the relay vs produce the same records with a bare producer loop.

        Steady state counts: each side's producer already holds its producer id (one record sent and acknowledged
        first). A new idempotent producer waits ~500 ms for it (librdkafka retries the id after 500 ms when its
        first request finds no broker up), which would be half of a cold drain on either side; the cold figures are
        kept beside. The sides alternate `rounds` times and medians count: one drain lasts well under a second.
        """
        for name in ("relay", "applier"):
            self.stack.services[name].stop()
        bootstrap = self.stack.urls["kafka"]
        ensure_topics(bootstrap, {"bench.relay": 6, "bench.bare": 6})
        values = [
            Envelope(
                id=uuid.uuid4().hex, type="bench.requested", capability="bench.update", key=str(i % 1000),
                occurred_at="2026-01-01T00:00:00Z", request_id="bench", sequence=i // 1000 + 1,
                payload={"path_params": {"customer_id": str(i % 1000)}, "body": {"phone": "+47 1234567"}},
            ).to_json()
            for i in range(RELAY_ROWS)
        ]  # fmt: skip
        log(f"relay vs bare producer: {RELAY_ROWS} records of ~{len(values[0])} bytes, {rounds} rounds")
        taken: dict[str, list[float]] = {"bare": [], "relay": [], "bare_cold": [], "relay_cold": []}
        for round_ in range(rounds):
            for warm in (True, False):
                suffix = "" if warm else "_cold"
                taken["bare" + suffix].append(self._bare_once(values, warm))
                taken["relay" + suffix].append(self._relay_once(values, warm))
            log(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:,.0f} ev/s" for k, v in taken.items()))
        self.stack.start_worker("relay")
        self.stack.start_worker("applier")
        median = {name: statistics.median(rates) for name, rates in taken.items()}
        return {
            "relay_events_per_s": median["relay"], "bare_producer_events_per_s": median["bare"],
            "ratio": median["relay"] / median["bare"], "relay_rounds": taken["relay"], "bare_rounds": taken["bare"],
            "cold_relay_events_per_s": median["relay_cold"], "cold_bare_producer_events_per_s": median["bare_cold"],
            "cold_ratio": median["relay_cold"] / median["bare_cold"],
        }  # fmt: skip

    def _bare_once(self, values: list[bytes], warm: bool) -> float:
        producer = Producer({"bootstrap.servers": self.stack.urls["kafka"], **PRODUCER})
        if warm:
            producer.produce("bench.bare", value=values[0], key="0")
            producer.flush(30)
        t0 = time.perf_counter()
        for i, value in enumerate(values):
            while True:
                try:
                    producer.produce("bench.bare", value=value, key=str(i % 1000))
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)
        producer.flush(60)
        return len(values) / (time.perf_counter() - t0)

    def _queue(self, values: list[bytes]) -> None:
        """Write `values` to the outbox in one transaction (the facade writes one row per accepted update)."""
        with self.engine.begin() as conn:
            conn.execute(
                event_outbox.insert(),
                [{"event_id": uuid.uuid4().hex, "topic": "bench.relay", "key": str(i % 1000), "value": v}
                 for i, v in enumerate(values)],
            )  # fmt: skip
            conn.execute(sa.text("ANALYZE strangler.event_outbox"))

    def _relay_once(self, values: list[bytes], warm: bool) -> float:
        """Time the relay (shipped settings, as `strangler relay` runs) draining `values`: handed to a running relay
        that has published one row (warm), or queued before the relay starts (cold)."""
        relay = OutboxRelay(self.engine, self.stack.urls["kafka"])
        stop = threading.Event()
        thread = threading.Thread(target=relay.run, args=(stop,))

        def marked() -> float:
            # The relay's own count of rows recorded published, read from the counter alone: its registry's other
            # collector (the backlog gauge) would cost the database it measures a count of up to 100,000 rows a poll.
            return next(s.value for s in relay.published.collect()[0].samples if s.name.endswith("_total"))

        if warm:
            thread.start()
            self._queue(values[:1])
            wait_until(lambda: marked() >= 1, 60, interval=0.002, what="the relay's first row")
            self._queue(values)
        else:
            self._queue(values)
            thread.start()
        t0, goal = time.perf_counter(), len(values) + (1 if warm else 0)
        wait_until(lambda: marked() >= goal, 300, interval=0.002, what="the relay to drain the outbox")
        rate = len(values) / (time.perf_counter() - t0)
        stop.set()
        thread.join()
        with self.engine.connect() as conn:  # what the relay counted is what left the queue
            left = conn.execute(sa.select(sa.func.count()).where(unpublished())).scalar_one()
        assert left == 0, f"{left} rows past the last publication after the relay counted all of them published"
        # The next round starts from the same table as this one did, not behind 100,000 more rows.
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(event_outbox.delete().where(event_outbox.c.topic == "bench.relay"))
            conn.execute(sa.text("VACUUM strangler.event_outbox"))
        return rate

    def accept_to_applied(self, rate: float = 200.0, seconds: float = 15.0) -> dict[str, float]:
        """End-to-end: accept at `rate`/s, then read accepted→applied (and its two stages) from the control plane."""
        self.routes("set", "profile.update", "--mode", "events", "--reason", "benchmark: end to end")
        path = "/v1/customers/{}/profile"
        ids: list[str] = []
        lock = threading.Lock()

        def call(i: int) -> None:
            _, body = self.client.patch(path.format(1 + i % 500), {"phone": f"+48 {i:07d}"})
            with lock:
                ids.append(json.loads(body)["request_id"])

        meter = self._meter()
        before, own = meter.snapshot(), resource.getrusage(resource.RUSAGE_SELF)
        paced(rate, seconds, 16, call)
        query = sa.select(sa.func.extract("epoch", event_requests.c.applied_at - event_requests.c.accepted_at)).where(
            event_requests.c.request_id.in_(ids), event_requests.c.state == "applied"
        )

        def all_applied() -> bool:
            with self.engine.connect() as conn:
                return len(conn.execute(query).all()) == len(ids)

        try:
            wait_until(all_applied, 120, interval=0.2, what="every update applied")
        except TimeoutError:
            with self.engine.connect() as conn:
                states = conn.execute(
                    sa.select(event_requests.c.state, sa.func.count())
                    .where(event_requests.c.request_id.in_(ids))
                    .group_by(event_requests.c.state)
                ).all()
            raise TimeoutError(f"not every update was applied: {dict(states)} of {len(ids)}") from None
        cpu = CpuMeter.delta(before, meter.snapshot())
        end = resource.getrusage(resource.RUSAGE_SELF)
        cpu["load generator"] = round(end.ru_utime + end.ru_stime - own.ru_utime - own.ru_stime, 3)
        del cpu["loadgen"]  # reaped children: none here, the load generator is this process
        # Where the time went: accepted -> first acknowledged by Kafka (the relay) and from there -> applied.
        published = (
            sa.select(
                event_requests.c.accepted_at, event_requests.c.applied_at,
                outbox_published_at(event_outbox).label("published_at"),
            )
            .join(event_outbox, event_outbox.c.event_id == event_requests.c.event_id)
            .where(event_requests.c.request_id.in_(ids))
            .subquery()
        )  # fmt: skip
        stages = sa.select(
            sa.func.extract("epoch", published.c.published_at - published.c.accepted_at),
            sa.func.extract("epoch", published.c.applied_at - published.c.published_at),
        ).where(published.c.published_at.is_not(None))
        with self.engine.connect() as conn:
            lags = sorted(float(v) * 1000 for (v,) in conn.execute(query))
            rows = conn.execute(stages).all()
        relay_ms = sorted(float(row[0]) * 1000 for row in rows)
        after_ms = sorted(float(row[1]) * 1000 for row in rows)
        return {
            "n": len(ids), "rate": rate, "p50_ms": percentile(lags, 50), "p99_ms": percentile(lags, 99),
            "published_p50_ms": percentile(relay_ms, 50), "published_p99_ms": percentile(relay_ms, 99),
            "published_to_applied_p50_ms": percentile(after_ms, 50),
            "published_to_applied_p99_ms": percentile(after_ms, 99),
            "cpu_ms_per_update": {name: round(1000 * seconds / len(ids), 3) for name, seconds in cpu.items()},
        }  # fmt: skip

    def _meter(self) -> CpuMeter:
        """CPU time per part of the stack (the facade's, sandbox's and workers' process trees, broker, PostgreSQL)."""
        stack = self.stack
        cluster = stack.cluster
        assert cluster is not None
        roots: dict[str, Callable[[], int | None]] = {
            name: (lambda name=name: stack.services[name].proc.pid) for name in ("facade", "legacy", "relay", "applier")
        }
        roots["broker"] = lambda: stack.broker.pid if stack.broker else None
        roots["postgres"] = lambda: cluster.pid
        return CpuMeter(roots)

    def run(self) -> dict[str, Any]:
        self.faults(latency_ms=50, paths=["/CBS/CUST/"])
        log("accept latency, legacy mode (legacy answers in 50 ms)")
        self.figures["legacy_accept"] = self.accept_latency("legacy")
        log("accept latency, events mode (legacy answers in 50 ms)")
        self.figures["events_accept"] = self.accept_latency("events")
        self.faults(latency_ms=0)
        requests.delete(self.stack.urls["legacy"] + "/__admin/faults", timeout=5)
        log("accept -> applied at 200 updates/s")
        self.figures["accept_to_applied"] = self.accept_to_applied()
        log("relay vs bare producer")
        self.figures["relay"] = self.relay_vs_bare()
        return self.figures


def report(f: dict[str, Any]) -> bool:
    rows = [
        ("events accept p99 <= 15 ms", f["events_accept"]["p99_ms"] <= 15),
        ("legacy accept p99 >= 50 ms (the comparison holds)", f["legacy_accept"]["p99_ms"] >= 50),
        ("relay >= 50% of the bare producer", f["relay"]["ratio"] >= 0.5),
        ("relay >= 10,000 events/s", f["relay"]["relay_events_per_s"] >= 10_000),
        ("accept->applied p99 <= 1 s at 200/s", f["accept_to_applied"]["p99_ms"] <= 1000),
    ]
    print("\n== events benchmark ==")
    for name in ("legacy_accept", "events_accept"):
        r = f[name]
        print(f"{name:18} p50 {r['p50_ms']:7.2f} ms   p99 {r['p99_ms']:7.2f} ms   errors {r['errors']}/{r['n']}")
    r = f["relay"]
    relay, bare = r["relay_events_per_s"], r["bare_producer_events_per_s"]
    print(f"relay              {relay:9,.0f} events/s   bare producer {bare:9,.0f} events/s   ratio {r['ratio']:.2f}")
    rounds = "  ".join(f"{a:,.0f}/{b:,.0f}" for a, b in zip(r["relay_rounds"], r["bare_rounds"], strict=True))
    print(
        f"  (steady state: producers hold their ids; medians of {len(r['relay_rounds'])} rounds, relay/bare: {rounds})"
    )
    cold_relay, cold_bare = r["cold_relay_events_per_s"], r["cold_bare_producer_events_per_s"]
    print(
        f"  from cold producers (both wait ~500 ms for a producer id): relay {cold_relay:,.0f}, bare {cold_bare:,.0f}, "
        f"ratio {r['cold_ratio']:.2f}"
    )
    r = f["accept_to_applied"]
    print(f"accept->applied    p50 {r['p50_ms']:7.1f} ms   p99 {r['p99_ms']:7.1f} ms   ({r['n']} at {r['rate']:g}/s)")
    print(f"  ->published      p50 {r['published_p50_ms']:7.1f} ms   p99 {r['published_p99_ms']:7.1f} ms   (the relay)")
    per_update = "  ".join(f"{name} {ms:.2f}" for name, ms in r["cpu_ms_per_update"].items())
    print(f"  CPU ms per update: {per_update}")
    print(
        f"  published->applied p50 {r['published_to_applied_p50_ms']:7.1f} ms   "
        f"p99 {r['published_to_applied_p99_ms']:7.1f} ms   (broker, consumer, applier)"
    )
    for name, ok in rows:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    return all(ok for _, ok in rows)


def main() -> None:
    options = StackOptions(
        customers=1000, facade_workers=2, facade_threads=32, log=log, applier_workers=16,
        keep_logs=bool(os.environ.get("STRANGLER_KEEP_LOGS")),
    )  # fmt: skip
    with Stack(options) as stack:
        figures = EventsBench(stack).run()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "events.json").write_text(json.dumps(figures, indent=2))
    report(figures)


if __name__ == "__main__":
    main()
