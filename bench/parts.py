"""CPU per call of the facade's building blocks, one thread, in this process, against the running legacy server.

Each figure is `time.thread_time()` (this thread's user+system CPU) over many calls after a warm-up: the server's
work is not in it, and neither is waiting. The whole facade app is called as a WSGI app, without gunicorn.
"""

from __future__ import annotations

import http.client
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import requests
import tenacity
import urllib3
from flask import Flask, Response, g, request
from pythonjsonlogger.json import JsonFormatter
from werkzeug.test import EnvironBuilder

from connectors.upstream import UpstreamClient, UpstreamConfig, UpstreamRequest

LEGACY_BALANCE = "/CBS/ACCT/BAL?ACCTNO=0000000001"
FACADE_BALANCE = "/v1/accounts/1/balance"
ACCESS_FIELDS = {
    "request_id": uuid.uuid4().hex, "client": "portal", "method": "GET", "path": "/v1/accounts/1/balance",
    "capability": "accounts.balance", "mode": "legacy", "upstream": "legacy", "status": 200, "ms": 2.5,
}  # fmt: skip


def cpu_us_per_call(
    fn: Callable[[], object], calls: int, warmup: int = 100, clock: Callable[[], float] = time.thread_time
) -> float:
    """Return CPU microseconds per call of `fn` after `warmup` calls: this thread's, or the process's with
    `clock=time.process_time` (which also counts work handed to other threads, such as the log writer)."""
    for _ in range(warmup):
        fn()
    started = clock()
    for _ in range(calls):
        fn()
    return (clock() - started) / calls * 1e6


def wsgi_caller(app: Any, path: str, headers: Mapping[str, str]) -> Callable[[], object]:
    """Return a function that calls a WSGI app once for GET `path` and drains the body."""
    environ = EnvironBuilder(path=path, headers=list(headers.items())).get_environ()

    def call() -> object:
        body = app(dict(environ), lambda status, headers, exc_info=None: None)
        try:
            return b"".join(body)
        finally:
            getattr(body, "close", lambda: None)()

    return call


@contextmanager
def multiprocess_metrics() -> Iterator[str]:
    """Switch prometheus_client to multiprocess (mmap file) values, as under gunicorn, for the duration."""
    from prometheus_client import values

    directory = tempfile.mkdtemp(prefix="bench-metrics-")
    previous = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    values.ValueClass = values.get_value_class()
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = previous
        values.ValueClass = values.get_value_class()
        shutil.rmtree(directory, ignore_errors=True)


def facade_app_cost(
    facade_env: Mapping[str, str], path: str, headers: Mapping[str, str], calls: int
) -> tuple[float, float]:
    """Return the CPU per request of the real facade app (legacy mode), built here from the stack's environment:
    the calling thread's, and the whole process's (with the log writer thread and the background pollers)."""
    from contextlib import redirect_stderr

    from core.settings import Settings
    from facade.app import create_app

    # The facade's log writer keeps the stream it found at its first start: leave it open (one descriptor).
    devnull = open(os.devnull, "w")  # noqa: SIM115
    with multiprocess_metrics(), redirect_stderr(devnull):
        app = create_app(Settings.from_env(facade_env))
        try:
            call = wsgi_caller(app.wsgi_app, path, headers)
            return cpu_us_per_call(call, calls), cpu_us_per_call(call, calls, clock=time.process_time)
        finally:
            app.extensions["strangler"].close()


def flask_skeleton() -> Flask:
    """Return a Flask app shaped like the facade's request path without its work: hooks, one route, a JSON body."""
    app = Flask("bench.skeleton")

    @app.before_request
    def identify() -> None:
        g.request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex
        g.client_id = request.headers.get("Authorization", "").partition(" ")[2]

    @app.after_request
    def tag(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.request_id
        return response

    @app.get("/v1/accounts/<account_id>/balance")
    def balance(account_id: str) -> Response:
        body = b'{"account_id":"1","currency":"EUR","balance":"84596.20","available":"84596.20","as_of":"2026-11-21"}'
        return Response(body, headers={"Content-Type": "application/json"})

    return app


def json_log_line() -> Callable[[], object]:
    """Return a function that writes one access-log line like the facade's (python-json-logger) to /dev/null."""
    log = logging.getLogger(f"bench.parts.{uuid.uuid4().hex}")
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the logger
    handler.setFormatter(
        JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", rename_fields={"levelname": "level"})
    )
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return lambda: log.info("request", extra=ACCESS_FIELDS)


def facade_access_log() -> tuple[Callable[[], object], Callable[[], object]]:
    """Return the facade's access-log write as a request thread pays it, and the writer thread's formatting of it."""
    import queue

    from facade.logs import AccessLog, _Access, _Writer

    access_log = AccessLog()  # onto the facade's writer queue once its logging is configured (the app was built)
    writer = _Writer(queue.SimpleQueue(), open(os.devnull, "w"))  # noqa: SIM115 - not started: formats only
    entry = _Access(time.time(), ACCESS_FIELDS)
    return lambda: access_log.write(ACCESS_FIELDS), lambda: writer._access_line(entry)


def metrics_updates(cached: bool = False) -> Callable[[], object]:
    """Return a function that counts one request and observes its latency: `labels()` each time, or cached children
    as the facade does."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from facade.portal import LabelledChildren

    registry = CollectorRegistry()
    labels = ("capability", "mode", "upstream")
    requests_total = Counter("bench_requests", "requests", (*labels, "status"), registry=registry)
    latency = Histogram("bench_request_seconds", "latency", labels, registry=registry)

    def update() -> None:
        requests_total.labels("accounts.balance", "legacy", "legacy", "200").inc()
        latency.labels("accounts.balance", "legacy", "legacy").observe(0.0025)

    counts, seconds = LabelledChildren(requests_total), LabelledChildren(latency)

    def update_cached() -> None:
        counts("accounts.balance", "legacy", "legacy", "200").inc()
        seconds("accounts.balance", "legacy", "legacy").observe(0.0025)

    return update_cached if cached else update


def measure_parts(
    legacy_url: str,
    legacy_path: str,
    facade_env: Mapping[str, str],
    facade_path: str,
    facade_headers: Mapping[str, str],
    calls: int = 500,
) -> dict[str, float]:
    """Return CPU microseconds per call of the whole facade app and of each part it is built from."""
    url = legacy_url + legacy_path
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + ("?" + parts.query if parts.query else "")
    path, _, query = legacy_path.partition("?")
    params = dict(pair.split("=", 1) for pair in query.split("&")) if query else None
    costs: dict[str, float] = {}
    (
        costs["facade app, whole request (WSGI call, legacy mode)"],
        costs["facade app, whole request, process CPU (+ log writer thread, pollers)"],
    ) = facade_app_cost(facade_env, facade_path, facade_headers, calls)
    client = UpstreamClient(UpstreamConfig(name="legacy", base_url=legacy_url, max_concurrency=64, pool_size=64))
    upstream_request = UpstreamRequest("GET", path, params=params, safe_to_repeat=True)
    costs["UpstreamClient.send (breaker, semaphore, urllib3 pool)"] = cpu_us_per_call(
        lambda: client.send(upstream_request), calls
    )
    client.close()
    with requests.Session() as session:
        costs["requests.Session.get, keep-alive"] = cpu_us_per_call(lambda: session.get(url).content, calls)
    pool = urllib3.HTTPConnectionPool(host, port, maxsize=4)
    costs["urllib3 HTTPConnectionPool.request, keep-alive"] = cpu_us_per_call(
        lambda: pool.request("GET", target).data, calls
    )
    pool.close()
    conn = http.client.HTTPConnection(host, port)

    def plain_get() -> bytes:
        conn.request("GET", target)
        return conn.getresponse().read()

    costs["http.client.HTTPConnection, keep-alive"] = cpu_us_per_call(plain_get, calls)
    conn.close()
    retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(3), retry=tenacity.retry_if_result(lambda r: False))
    costs["tenacity.Retrying around a no-op"] = cpu_us_per_call(lambda: retrying(lambda: None), calls * 10)
    costs["Flask skeleton: hooks + one route, no upstream"] = cpu_us_per_call(
        wsgi_caller(flask_skeleton().wsgi_app, facade_path, facade_headers), calls * 5
    )
    costs["JSON access-log line (logging + python-json-logger, one thread)"] = cpu_us_per_call(
        json_log_line(), calls * 10
    )
    on_request_thread, on_writer_thread = facade_access_log()
    costs["facade access log: request thread (AccessLog.write)"] = cpu_us_per_call(on_request_thread, calls * 10)
    costs["facade access log: writer thread (JSON line)"] = cpu_us_per_call(on_writer_thread, calls * 10)
    with multiprocess_metrics():
        costs["prometheus counter + histogram, multiprocess mmap"] = cpu_us_per_call(metrics_updates(), calls * 10)
        costs["prometheus counter + histogram, multiprocess mmap, cached children"] = cpu_us_per_call(
            metrics_updates(cached=True), calls * 10
        )
    costs["prometheus counter + histogram, in-process"] = cpu_us_per_call(metrics_updates(), calls * 10)
    return {name: round(us, 1) for name, us in costs.items()}


def main() -> None:
    """Start a throwaway stack (no events pipeline, no CDC), print the CPU per call of each part, best of N rounds."""
    import argparse
    import sys

    from cli.stack import Stack, StackOptions

    parser = argparse.ArgumentParser(prog="python -m bench.parts", description=main.__doc__)
    parser.add_argument("--calls", type=int, default=500, help="calls per part and round (some parts use 5-10x)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the lowest figure per part is reported")
    args = parser.parse_args()
    options = StackOptions(
        customers=100, events_pipeline=False, replication=False, facade_workers=1, facade_threads=4,
        log=lambda line: print(line, file=sys.stderr),
    )  # fmt: skip
    with Stack(options) as stack:
        headers = {"Authorization": f"Bearer {stack.api_key}"}
        rounds = [
            measure_parts(stack.urls["legacy"], LEGACY_BALANCE, stack.facade_env, FACADE_BALANCE, headers, args.calls)
            for _ in range(args.rounds)
        ]
    width = max(len(name) for name in rounds[0])
    for name in rounds[0]:
        figures = [r[name] for r in rounds]
        print(f"{name:<{width}}  {min(figures):8.1f} µs   (rounds: {', '.join(f'{f:.1f}' for f in figures)})")


if __name__ == "__main__":
    main()
