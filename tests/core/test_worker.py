"""The services' gunicorn worker under real gunicorn on loopback: keep-alive, pipelining, crowding, expiry and stop."""

from __future__ import annotations

import http.client
import select
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.pgcluster import free_port
from core.procs import Service, start_service, wait_until

APP = """
import threading


def app(environ, start_response):
    body = f"{environ['PATH_INFO']} {threading.get_ident()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


def serve(tmp_path: Path, threads: int, keepalive: int) -> Service:
    (tmp_path / "tinyapp.py").write_text(APP)
    port = free_port()
    argv = [
        sys.executable, "-m", "gunicorn", "tinyapp:app", "--chdir", str(tmp_path),
        "--bind", f"127.0.0.1:{port}", "--worker-class", "core.worker.LingeringThreadWorker",
        "--workers", "1", "--threads", str(threads), "--keep-alive", str(keepalive),
        "--graceful-timeout", "30", "--no-control-socket",
    ]  # fmt: skip
    return start_service("tiny", argv, f"http://127.0.0.1:{port}", tmp_path / "logs", health_path="/")


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[Service]:
    service = serve(tmp_path, threads=2, keepalive=60)
    yield service
    service.stop(timeout=30)


def connect(service: Service) -> http.client.HTTPConnection:
    host, port = service.url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=20)


def get(conn: http.client.HTTPConnection, path: str) -> tuple[str, int]:
    conn.request("GET", path)
    response = conn.getresponse()
    assert response.status == 200
    served_path, thread = response.read().decode().split()
    return served_path, int(thread)


def test_a_thread_stays_on_its_keep_alive_connection(tiny: Service) -> None:
    """Two connections taking turns on two threads: each keeps its own thread (stock gthread hands every request to
    whichever pool thread is idle, so both would be served by the same one)."""
    first, second = connect(tiny), connect(tiny)
    threads: dict[str, set[int]] = {"first": set(), "second": set()}
    for i in range(20):
        for name, conn in (("first", first), ("second", second)):
            path, thread = get(conn, f"/{name}/{i}")
            assert path == f"/{name}/{i}"
            threads[name].add(thread)
    assert len(threads["first"]) == len(threads["second"]) == 1, f"a connection changed threads: {threads}"
    assert threads["first"] != threads["second"]
    first.close()
    second.close()


def test_more_connections_than_threads_are_all_answered(tiny: Service) -> None:
    """Two threads, five kept-alive connections: waiting threads hand theirs back instead of starving the others
    (a starved connection would wait out the 60 s keep-alive and time out the 20 s client)."""
    conns = [connect(tiny) for _ in range(5)]
    for round_ in range(3):
        for i, conn in enumerate(conns):
            assert get(conn, f"/c{i}-{round_}")[0] == f"/c{i}-{round_}"
    for conn in conns:
        conn.close()


def test_pipelined_requests_are_answered_in_order(tiny: Service) -> None:
    host, port = tiny.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(b"GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while received.count(b"HTTP/1.1 200") < 2 or not received.rstrip().split(b"\r\n")[-1].startswith(b"/p2"):
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {received!r}"
            received += chunk
    assert received.index(b"/p1 ") < received.index(b"/p2 ")


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(tmp_path: Path) -> None:
    service = serve(tmp_path, threads=2, keepalive=1)
    try:
        host, port = service.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=20) as sock:
            sock.sendall(b"GET /once HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while True:
                chunk = sock.recv(65536)  # the answer, then EOF once the server expires the idle connection
                if not chunk:
                    break
                received += chunk
        assert b"/once " in received
    finally:
        service.stop(timeout=30)


def test_idle_connections_expiring_together_do_not_stall_the_worker(tmp_path: Path) -> None:
    """Idle pooled connections whose peers never close (a proxy's or an HTTP client's keep-alive pool) expire; a new
    client is still answered at once. Closed gracefully on the main thread, each one held accepting for 2 s."""
    service = serve(tmp_path, threads=8, keepalive=1)
    pool = [connect(service) for _ in range(6)]
    try:
        for i, conn in enumerate(pool):
            get(conn, f"/idle-{i}")  # the answer is read whole: the connection stays open and idle
        idle = [conn.sock for conn in pool]
        readable, _, _ = select.select(idle, [], [], 20)  # the first expiry: the server's FIN
        assert readable and readable[0].recv(65536) == b""
        host, port = service.url.removeprefix("http://").split(":")
        fresh = http.client.HTTPConnection(host, int(port), timeout=4)  # the stall was 5 x 2 s
        assert get(fresh, "/fresh")[0] == "/fresh"
        for sock in idle:
            assert sock.recv(65536) == b"", "every idle connection is closed by the server"
    finally:
        for conn in pool:
            conn.close()
        service.stop(timeout=30)


def test_stopping_does_not_wait_for_idle_kept_alive_connections(tmp_path: Path) -> None:
    """A thread waiting on an idle connection is released at once on SIGTERM: the worker stops long before the
    60 s keep-alive and within the 30 s graceful timeout, and the client sees its connection closed."""
    service = serve(tmp_path, threads=2, keepalive=60)
    try:
        conn = connect(service)
        get(conn, "/before-stop")
        service.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: not service.alive(), timeout=20, what="gunicorn to stop")
        assert service.proc.returncode == 0
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            get(conn, "/after-stop")
    finally:
        service.stop()
