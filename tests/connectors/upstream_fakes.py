"""A scriptable upstream on real loopback sockets for the UpstreamClient tests, and a hand-moved clock.

Each test says, per method and path, what the upstream does, answer by answer (the last one repeats): a reply
(status, JSON or raw body, headers, an optional delay), hanging up, resetting the connection, or writing raw bytes
that are not HTTP. Every request that reached the server is recorded with its headers and body. A server can also be
created without listening (connections are refused) and start listening later, or listen without ever accepting
(connects time out).
"""

from __future__ import annotations

import email.message
import json as jsonlib
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from connectors.upstream import UpstreamClient, UpstreamConfig, UpstreamRequest

WAIT = 10.0  # generous bound on waits for events, so a broken test fails instead of hanging


@dataclass(frozen=True)
class Reply:
    """Answer with this status, body (``json`` encoded, or raw ``body``) and headers, ``delay`` seconds late."""

    status: int = 200
    json: Any = None
    body: bytes = b""
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class HangUp:
    """Read the request, then close the connection without a byte of answer."""


@dataclass(frozen=True)
class Reset:
    """Read the request, then reset the connection (RST)."""


@dataclass(frozen=True)
class Raw:
    """Read the request, write these bytes (not HTTP, or broken HTTP), then close."""

    data: bytes


@dataclass(frozen=True)
class Stall:
    """Read the request and answer only once the server's ``release`` event is set (or WAIT passed)."""


Answer = Reply | HangUp | Reset | Raw | Stall


@dataclass(frozen=True)
class Seen:
    """One request as the upstream received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: email.message.Message
    body: bytes


class ScriptedUpstream(ThreadingHTTPServer):
    """A threaded HTTP/1.1 server on 127.0.0.1 answering each (method, path) as scripted; 404 for the rest."""

    daemon_threads = False  # close() joins the handlers, so the record of calls is final afterwards
    block_on_close = True

    def __init__(self, listen: bool = True) -> None:
        super().__init__(("127.0.0.1", 0), _Handler, bind_and_activate=False)
        self.allow_reuse_address = True
        self.server_bind()
        self.scripts: dict[tuple[str, str], list[Answer]] = {}
        self.calls: list[Seen] = []
        self.lock = threading.Lock()
        self.arrived = threading.Event()
        self.arrivals = threading.Semaphore(0)  # one release per Stall request that reached the handler
        self.release = threading.Event()
        self.tls: Any = None  # an ssl.SSLContext to serve HTTPS with, set before start()
        self.connections: set[socket.socket] = set()
        self.accepted = 0  # connections accepted so far, open or closed
        self._thread: threading.Thread | None = None
        if listen:
            self.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start listening and serving (until then, connections to the port are refused)."""
        if self.tls is not None:
            self.socket = self.tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.server_activate()
        self._thread = threading.Thread(target=self.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    def script(self, method: str, path: str, *answers: Answer) -> None:
        """Answer `method path` with these answers in turn; the last one repeats."""
        with self.lock:
            self.scripts[(method, path)] = list(answers)

    def next_answer(self, method: str, path: str) -> Answer:
        with self.lock:
            answers = self.scripts.get((method, path))
            if not answers:
                return Reply(404, json={"error": "not scripted"})
            return answers.pop(0) if len(answers) > 1 else answers[0]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.connections.add(request)
            self.accepted += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close(self) -> None:
        """Release stalled handlers, stop serving, end idle keep-alive connections and join every handler thread."""
        self.release.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join(WAIT)
        with self.lock:
            open_connections = list(self.connections)
        for connection in open_connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.server_close()

    def seen(self, method: str, path: str) -> int:
        """Return how many `method path` requests arrived."""
        return sum(1 for c in self.calls if (c.method, c.path) == (method, path))


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedUpstream
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are written separately; do not wait for delayed ACKs
    timeout = WAIT  # an idle keep-alive connection cannot hold up close() for ever

    def log_message(self, format: str, *args: object) -> None:
        pass

    def setup(self) -> None:
        if hasattr(self.request, "do_handshake"):
            self.request.settimeout(WAIT)
            try:
                self.request.do_handshake()
            except OSError:
                self.close_connection = True
                self.rfile = self.wfile = None  # type: ignore[assignment]
                return
        super().setup()

    def handle(self) -> None:
        if self.rfile is None:
            return
        super().handle()

    def finish(self) -> None:
        if self.rfile is None:
            return
        super().finish()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target = urlsplit(self.path)
        with self.server.lock:
            self.server.calls.append(Seen(self.command, target.path, dict(parse_qsl(target.query)), self.headers, body))
        answer = self.server.next_answer(self.command, target.path)
        if isinstance(answer, HangUp):
            self.close_connection = True
            return
        if isinstance(answer, Reset):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if isinstance(answer, Raw):
            self.wfile.write(answer.data)
            self.close_connection = True
            return
        if isinstance(answer, Stall):
            self.server.arrived.set()
            self.server.arrivals.release()
            self.server.release.wait(WAIT)
            answer = Reply(json={"ok": True})
        if answer.delay:
            self.server.release.wait(answer.delay)
        payload = answer.body if answer.json is None else jsonlib.dumps(answer.json).encode()
        self.send_response(answer.status)
        if answer.json is not None:
            self.send_header("Content-Type", "application/json")
        headers = answer.headers.items() if isinstance(answer.headers, Mapping) else answer.headers
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


@contextmanager
def scripted(listen: bool = True) -> Iterator[ScriptedUpstream]:
    """Run a ScriptedUpstream for the duration of the block."""
    server = ScriptedUpstream(listen)
    try:
        yield server
    finally:
        server.close()


@contextmanager
def unaccepting_port() -> Iterator[int]:
    """Yield a port whose accept queue is full: a further connect gets no answer and times out."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
                fillers.append(filler)
            yield port
        finally:
            for filler in fillers:
                filler.close()


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_client(
    base_url: str,
    sleeps: list[float],
    clock: FakeClock | None = None,
    changes: list[tuple[str, str]] | None = None,
    sleep: Callable[[float], None] | None = None,
    **overrides: Any,
) -> UpstreamClient:
    """Build a client for `base_url` whose backoff sleeps are recorded (and passed to `sleep`), not slept."""
    config = UpstreamConfig(name="legacy", base_url=base_url, **overrides)

    def record(seconds: float) -> None:
        sleeps.append(seconds)
        if sleep is not None:
            sleep(seconds)

    return UpstreamClient(
        config,
        sleep=record,
        clock=clock or FakeClock(),
        on_breaker_change=(lambda old, new: changes.append((old, new))) if changes is not None else None,
    )


def get(path: str = "/accounts/1", **kw: Any) -> UpstreamRequest:
    return UpstreamRequest("GET", path, safe_to_repeat=True, **kw)


def post(path: str = "/payments", **kw: Any) -> UpstreamRequest:
    return UpstreamRequest("POST", path, json={"amount": "10.00"}, **kw)


@dataclass(frozen=True)
class Pki:
    """A throwaway CA with a server certificate for 127.0.0.1/localhost and a client certificate, as PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_pki(directory: Path) -> Pki:
    """Create a CA, a server and a client certificate with the openssl CLI in `directory`."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=strangler test CA",
            "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        (directory / f"{name}.ext").write_text(ext + "\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                "-out", f"{name}.csr")  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem")  # fmt: skip
    d = directory
    return Pki(d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key")
