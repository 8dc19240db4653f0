"""UpstreamClient over real loopback sockets, for what `responses` cannot fake: read timeouts, refusals, hang-ups."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connectors.upstream import (
    UpstreamClient,
    UpstreamConfig,
    UpstreamNotSent,
    UpstreamProtocolError,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
)

WAIT = 10.0  # generous bound on waits for events, so a broken test fails instead of hanging


class Upstream(ThreadingHTTPServer):
    """A tiny upstream: "/slow" holds its answer until `release` is set; "/hangup" closes without answering."""

    daemon_threads = False  # server_close() joins the handlers, so request counts are final afterwards
    block_on_close = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.arrived = threading.Event()
        self.arrivals = threading.Semaphore(0)  # one release per "/slow" request that reached the handler
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Upstream
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are written separately; do not wait for delayed ACKs
    timeout = WAIT  # an idle keep-alive connection cannot hold up server_close() for ever

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with self.server.lock:
            self.server.seen.append((self.command, self.path))
        if self.path == "/hangup":
            self.close_connection = True
            return
        if self.path == "/slow":
            self.server.arrived.set()
            self.server.arrivals.release()
            self.server.release.wait(WAIT)
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _handle
    do_POST = _handle


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(WAIT)


def client_for(base_url: str, sleeps: list[float], **overrides: object) -> UpstreamClient:
    config = UpstreamConfig(name="legacy", base_url=base_url, **overrides)  # type: ignore[arg-type]
    return UpstreamClient(config, sleep=sleeps.append)


def test_real_round_trip(upstream: Upstream) -> None:
    client = client_for(upstream.url, [])
    try:
        response = client.send(UpstreamRequest("GET", "/accounts/1", safe_to_repeat=True))
    finally:
        client.close()

    assert response.status == 200
    assert response.json() == {"ok": True}


def test_read_timeout_after_send_on_unsafe_post_is_in_doubt_and_not_repeated(upstream: Upstream) -> None:
    sleeps: list[float] = []
    client = client_for(upstream.url, sleeps, read_timeout=0.2, retry_attempts=3)

    with pytest.raises(UpstreamTimeout) as caught:
        client.send(UpstreamRequest("POST", "/slow", json={"amount": "10.00"}))
    client.close()
    upstream.release.set()
    upstream.shutdown()
    upstream.server_close()

    assert caught.value.sent is True
    assert upstream.seen == [("POST", "/slow")]
    assert sleeps == []


def test_hangup_after_send_on_unsafe_post_is_in_doubt_and_not_repeated(upstream: Upstream) -> None:
    sleeps: list[float] = []
    client = client_for(upstream.url, sleeps, retry_attempts=3)

    with pytest.raises(UpstreamTimeout) as caught:
        client.send(UpstreamRequest("POST", "/hangup", json={}))
    client.close()
    upstream.shutdown()
    upstream.server_close()

    assert caught.value.sent is True
    assert upstream.seen == [("POST", "/hangup")]


def test_hangup_on_safe_get_is_repeated(upstream: Upstream) -> None:
    sleeps: list[float] = []
    client = client_for(upstream.url, sleeps, retry_attempts=3)

    with pytest.raises(UpstreamTimeout):
        client.send(UpstreamRequest("GET", "/hangup", safe_to_repeat=True))
    client.close()
    upstream.shutdown()
    upstream.server_close()

    assert upstream.seen == [("GET", "/hangup")] * 3
    assert len(sleeps) == 2


def test_connection_refused_is_retried_even_for_a_post_then_not_sent() -> None:
    # A bound socket that never listens refuses connections, and holding it keeps the port from being reused.
    with socket.socket() as closed_port:
        closed_port.bind(("127.0.0.1", 0))
        sleeps: list[float] = []
        client = client_for(f"http://127.0.0.1:{closed_port.getsockname()[1]}", sleeps, retry_attempts=3)

        with pytest.raises(UpstreamNotSent) as caught:
            client.send(UpstreamRequest("POST", "/payments", json={}))

    assert caught.value.reason == "unreachable"
    assert len(sleeps) == 2  # three attempts
    assert client.probe() is False


def test_garbage_answer_is_a_protocol_error() -> None:
    class Garbage(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            self.wfile.write(b"SPROCKETS 42\r\n\r\n")

    with socketserver.TCPServer(("127.0.0.1", 0), Garbage) as server:
        thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
        thread.start()
        client = client_for(f"http://127.0.0.1:{server.server_address[1]}", [], retry_attempts=1)
        try:
            with pytest.raises(UpstreamProtocolError):
                client.send(UpstreamRequest("GET", "/accounts/1", safe_to_repeat=True))
        finally:
            server.shutdown()
            thread.join(WAIT)


def test_saturated_client_refuses_quickly_and_frees_the_slot_after(upstream: Upstream) -> None:
    client = client_for(upstream.url, [], max_concurrency=1, queue_timeout=0.05)
    with ThreadPoolExecutor(max_workers=1) as pool:
        in_flight = pool.submit(client.send, UpstreamRequest("GET", "/slow", safe_to_repeat=True))
        assert upstream.arrived.wait(WAIT)

        with pytest.raises(UpstreamUnavailable) as caught:
            client.send(UpstreamRequest("GET", "/fast", safe_to_repeat=True))

        upstream.release.set()
        first: UpstreamResponse = in_flight.result(WAIT)
    after = client.send(UpstreamRequest("GET", "/fast", safe_to_repeat=True))
    client.close()

    assert caught.value.reason == "saturated"
    assert caught.value.retry_after == 1
    assert not isinstance(caught.value, UpstreamNotSent)
    assert first.status == 200
    assert after.status == 200
    assert upstream.seen.count(("GET", "/fast")) == 1  # the refused call never went out
    assert client.breaker_state == "closed"  # saturation is ours, not the upstream's failure


def test_calls_are_concurrent_not_serialised_by_the_breaker(upstream: Upstream) -> None:
    client = client_for(upstream.url, [], max_concurrency=2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        calls = [pool.submit(client.send, UpstreamRequest("GET", "/slow", safe_to_repeat=True)) for _ in range(2)]
        both_in_flight = upstream.arrivals.acquire(timeout=WAIT) and upstream.arrivals.acquire(timeout=WAIT)
        upstream.release.set()
        statuses = [call.result(WAIT).status for call in calls]
    client.close()

    assert both_in_flight
    assert statuses == [200, 200]
