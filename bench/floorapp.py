"""The Python floor the facade benchmark compares against: a bare WSGI pass-through to one upstream, nothing else.

No Flask, no routing table, no adapter, no breaker, no retries, no metrics, no log: gunicorn parses the request, one
urllib3 keep-alive pool forwards it as it came and the upstream's answer goes back as it came. It runs under the
facade's own worker class and thread count, so the gap between it and nginx is what the mandated server and HTTP
client cost on these cores, and the gap between it and the facade is what the facade's features cost.
Served by gunicorn from `bench.floorapp:create_app_from_env()`; FLOOR_UPSTREAM ("host:port") is read then.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import urllib3

# What the upstream sets that gunicorn sets again, or that describes the upstream's own connection.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "date", "server"})
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def create_app(upstream: str, pool_size: int = 64) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """Return a WSGI app that forwards every request to `upstream` ("host:port") and answers what it answered."""
    host, _, port = upstream.rpartition(":")
    pool = urllib3.HTTPConnectionPool(host, int(port), maxsize=pool_size, block=False, retries=False)
    timeout = urllib3.Timeout(connect=1.0, read=10.0)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        query = environ.get("QUERY_STRING")
        target = environ["PATH_INFO"] + (f"?{query}" if query else "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else None
        response = pool.urlopen(environ["REQUEST_METHOD"], target, body=body, timeout=timeout, redirect=False)
        headers = [(k, v) for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP]
        start_response(f"{response.status} {response.reason}", headers)
        return [response.data]

    return app


def create_app_from_env() -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """Build the app from FLOOR_UPSTREAM (and FLOOR_POOL_SIZE, default 64)."""
    return create_app(os.environ["FLOOR_UPSTREAM"], int(os.environ.get("FLOOR_POOL_SIZE", "64")))
