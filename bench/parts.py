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


def cpu_us_per_call(fn: Callable[[], object], calls: int, warmup: int = 100) -> float:
    """Return this thread's CPU microseconds per call of `fn`, after `warmup` calls."""
    for _ in range(warmup):
        fn()
    started = time.thread_time()
    for _ in range(calls):
        fn()
    return (time.thread_time() - started) / calls * 1e6


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


def facade_app_cost(facade_env: Mapping[str, str], path: str, headers: Mapping[str, str], calls: int) -> float:
    """Return the CPU per request of the real facade app (legacy mode), built here from the stack's environment."""
    from core.settings import Settings
    from facade.app import create_app

    with multiprocess_metrics(), open(os.devnull, "w") as devnull:
        app = create_app(Settings.from_env(facade_env))
        for handler in logging.getLogger("strangler").handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(devnull)
        try:
            return cpu_us_per_call(wsgi_caller(app.wsgi_app, path, headers), calls)
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
    extra = {"request_id": uuid.uuid4().hex, "client": "portal", "method": "GET", "path": "/v1/accounts/1/balance",
             "capability": "accounts.balance", "mode": "legacy", "upstream": "legacy", "status": 200,
             "ms": 2.5}  # fmt: skip
    return lambda: log.info("request", extra=extra)


def metrics_updates() -> Callable[[], object]:
    """Return a function that counts one request and observes its latency, as the facade does per request."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    labels = ("capability", "mode", "upstream")
    requests_total = Counter("bench_requests", "requests", (*labels, "status"), registry=registry)
    latency = Histogram("bench_request_seconds", "latency", labels, registry=registry)

    def update() -> None:
        requests_total.labels("accounts.balance", "legacy", "legacy", "200").inc()
        latency.labels("accounts.balance", "legacy", "legacy").observe(0.0025)

    return update


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
    costs["facade app, whole request (WSGI call, legacy mode)"] = facade_app_cost(
        facade_env, facade_path, facade_headers, calls
    )
    client = UpstreamClient(UpstreamConfig(name="legacy", base_url=legacy_url, max_concurrency=64, pool_size=64))
    upstream_request = UpstreamRequest("GET", path, params=params, safe_to_repeat=True)
    costs["UpstreamClient.send (breaker, semaphore, tenacity, requests)"] = cpu_us_per_call(
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
    costs["JSON access-log line (python-json-logger)"] = cpu_us_per_call(json_log_line(), calls * 10)
    with multiprocess_metrics():
        costs["prometheus counter + histogram, multiprocess mmap"] = cpu_us_per_call(metrics_updates(), calls * 10)
    costs["prometheus counter + histogram, in-process"] = cpu_us_per_call(metrics_updates(), calls * 10)
    return {name: round(us, 1) for name, us in costs.items()}
