"""HTTP client for one upstream (legacy or cloud): keep-alive pool, bounded concurrency, safe retries, circuit breaker.

Retry rule: a request that never left (connect refused, connect timeout, DNS, certificate rejected) may be repeated
whatever its method; once it was sent, only a request marked ``safe_to_repeat`` is repeated (after a read timeout, a
dropped connection, a garbage answer, or a 502/503/504 whose Retry-After, if any, is at most one second). A write that
was sent and got no answer raises ``UpstreamTimeout(sent=True)``: its outcome is unknown and the caller resolves it.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import math
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
import tenacity
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, ProtocolError
from urllib3.exceptions import SSLError as Urllib3SSLError

from connectors.breaker import BreakerOpen, CallBreaker

_RETRYABLE_STATUS = frozenset({502, 503, 504})
_FAILURE_STATUS = frozenset({500, 502, 503, 504})
_MAX_RETRY_AFTER_S = 1.0
_MAX_BACKOFF_S = 1.0
_PROBE_TIMEOUT_CAP_S = 1.0


@dataclass(frozen=True)
class TlsConfig:
    """How to reach an upstream over TLS: a CA bundle (or bool) to verify it, an optional client certificate (mTLS)."""

    verify: bool | str = True
    client_cert: str | None = None
    client_key: str | None = None


@dataclass(frozen=True)
class UpstreamConfig:
    """Where one upstream lives and how hard to try it; refused at construction if a value cannot work."""

    name: str
    base_url: str
    connect_timeout: float = 1.0
    read_timeout: float = 5.0
    max_concurrency: int = 64
    queue_timeout: float = 0.5
    pool_size: int = 64
    retry_attempts: int = 3
    retry_backoff: float = 0.05
    breaker_fail_max: int = 5
    breaker_reset_s: float = 5.0
    tls: TlsConfig = TlsConfig()

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"upstream {self.name!r}: base_url must start with http:// or https://")
        for attr in ("max_concurrency", "pool_size", "retry_attempts", "breaker_fail_max"):
            if getattr(self, attr) < 1:
                raise ValueError(f"upstream {self.name!r}: {attr} must be at least 1")
        for attr in ("connect_timeout", "read_timeout", "breaker_reset_s"):
            if getattr(self, attr) <= 0:
                raise ValueError(f"upstream {self.name!r}: {attr} must be positive")
        for attr in ("queue_timeout", "retry_backoff"):
            if getattr(self, attr) < 0:
                raise ValueError(f"upstream {self.name!r}: {attr} must not be negative")


@dataclass(frozen=True)
class UpstreamRequest:
    """One call to make: ``path`` is appended to the base URL; send ``json`` or raw ``body``, never both."""

    method: str
    path: str
    params: Mapping[str, str] | None = None
    json: Any = None
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: tuple[float, float] | None = None
    safe_to_repeat: bool = False

    def __post_init__(self) -> None:
        if self.json is not None and self.body is not None:
            raise ValueError("UpstreamRequest takes json or body, not both")


@dataclass(frozen=True)
class UpstreamResponse:
    """The upstream's answer, whatever its status, with the wall time of the call and how many attempts it took."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    elapsed_ms: float
    attempts: int

    def json(self) -> Any:
        """Return the body decoded as JSON; raises ValueError if it is not JSON."""
        return json.loads(self.body)


class UpstreamError(Exception):
    """No usable answer from the upstream named by ``upstream`` ("legacy", "cloud")."""

    def __init__(self, upstream: str, message: str = "") -> None:
        super().__init__(f"{upstream}: {message}" if message else upstream)
        self.upstream = upstream


class UpstreamUnavailable(UpstreamError):
    """The call was not made or never got through: breaker open, saturated, or unreachable; retry after a while."""

    def __init__(self, upstream: str, reason: str = "unavailable", retry_after: float = 1.0, message: str = "") -> None:
        super().__init__(upstream, message or reason)
        self.reason = reason
        self.retry_after = retry_after


class UpstreamNotSent(UpstreamUnavailable):
    """The request certainly never reached the upstream (connect refused or timed out), after any retries."""


class UpstreamTimeout(UpstreamError):
    """No answer after the request was sent (read timeout, dropped connection): a write's outcome is unknown."""

    def __init__(self, upstream: str, sent: bool = True, message: str = "") -> None:
        super().__init__(upstream, message or ("no answer after send" if sent else "timed out"))
        self.sent = sent


class UpstreamProtocolError(UpstreamError):
    """The upstream answered with something that is not HTTP (garbage status line, undecodable body)."""


class _RefuseAllCookies(http.cookiejar.CookiePolicy):
    """Keeps the shared session stateless: no cookie from one caller's answer can ride along on another's request."""

    netscape = True
    rfc2965 = False
    hide_cookie2 = True

    def set_ok(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        return False

    def domain_return_ok(self, domain: str, request: urllib.request.Request) -> bool:
        return False

    def path_return_ok(self, path: str, request: urllib.request.Request) -> bool:
        return False


@dataclass(slots=True)
class _Attempt:
    """What one attempt produced (an answer or a classified error) and whether another attempt is allowed."""

    response: requests.Response | None = None
    error: UpstreamError | None = None
    retryable: bool = False
    wait_at_least: float = 0.0

    @property
    def failed(self) -> bool:
        """True if the breaker should count this as the upstream failing."""
        return self.error is not None or (self.response is not None and self.response.status_code in _FAILURE_STATUS)


class _WaitRetryAfter(tenacity.wait.wait_base):
    """Wait the backoff, or longer if the upstream's Retry-After asked for it."""

    def __init__(self, backoff: tenacity.wait.wait_base) -> None:
        self._backoff = backoff

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        backoff = self._backoff(retry_state)
        outcome = retry_state.outcome
        if outcome is None or outcome.failed:
            return backoff
        attempt: _Attempt = outcome.result()
        return max(backoff, attempt.wait_at_least)


def _is_retryable(attempt: _Attempt) -> bool:
    return attempt.retryable


def _last_attempt(retry_state: tenacity.RetryCallState) -> _Attempt:
    """Out of attempts: hand back the last one (a 5xx answer or an error) instead of tenacity's RetryError."""
    assert retry_state.outcome is not None
    result: _Attempt = retry_state.outcome.result()
    return result


def _retry_after_seconds(value: str | None) -> float:
    """Return the delay a Retry-After header asks for: 0 when absent, infinity when not a plain number of seconds."""
    if value is None:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        return math.inf  # an HTTP-date or junk: treat as "long", so we do not retry on it
    return seconds if seconds >= 0 else math.inf


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the failure happened before any byte of the request left: connect refused/timeout, DNS, bad cert."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    cause = exc.args[0] if exc.args else None
    if not isinstance(cause, MaxRetryError):
        return False
    reason = cause.reason
    if isinstance(reason, ConnectTimeoutError):  # includes NewConnectionError and NameResolutionError
        return True
    # Other TLS errors can also come from reading the answer, so only a rejected certificate proves "not sent".
    return isinstance(reason, Urllib3SSLError) and any(isinstance(arg, ssl.CertificateError) for arg in reason.args)


def _is_garbage(exc: requests.RequestException) -> bool:
    """True when the upstream answered, but not with HTTP (as opposed to hanging up on us)."""
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return True
    cause = exc.args[0] if exc.args else None
    if not (isinstance(cause, ProtocolError) and len(cause.args) > 1):
        return False
    inner = cause.args[1]
    # RemoteDisconnected is a BadStatusLine too, and IncompleteRead is a truncated body: both are hang-ups.
    return isinstance(inner, http.client.HTTPException) and not isinstance(
        inner, ConnectionError | http.client.IncompleteRead
    )


def _configure_session(session: requests.Session, config: UpstreamConfig) -> None:
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=config.pool_size, max_retries=0, pool_block=False)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.cookies.set_policy(_RefuseAllCookies())
    # No proxies, netrc or CA bundles from the environment: the link to an upstream is configured, and requests would
    # otherwise re-read the environment on every call.
    session.trust_env = False
    session.verify = config.tls.verify
    if config.tls.client_cert is None:
        session.cert = None
    elif config.tls.client_key is None:
        session.cert = config.tls.client_cert
    else:
        session.cert = (config.tls.client_cert, config.tls.client_key)


class UpstreamClient:
    """Calls one upstream through a shared keep-alive session; thread-safe; one instance per upstream per process.

    The circuit breaker counts each logical call once, by its final outcome after retries: a connection error, a
    timeout, a garbage answer or a 500/502/503/504 is a failure, anything else (2xx, 3xx, 4xx) a success. Retries inside
    one call therefore cannot open the breaker on their own, and an open breaker refuses whole calls. Calls refused for
    saturation or by the breaker are not counted. ``session``, if given, is configured like an owned one and closed by
    ``close()``.
    """

    def __init__(
        self,
        config: UpstreamConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
        on_breaker_change: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._name = config.name
        self._base_url = config.base_url.rstrip("/")
        self._timeout = (config.connect_timeout, config.read_timeout)
        self._probe_timeout = (
            min(config.connect_timeout, _PROBE_TIMEOUT_CAP_S),
            min(config.read_timeout, _PROBE_TIMEOUT_CAP_S),
        )
        self._queue_timeout = config.queue_timeout
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._session = session if session is not None else requests.Session()
        _configure_session(self._session, config)
        self._breaker = CallBreaker(
            config.name,
            fail_max=config.breaker_fail_max,
            reset_s=config.breaker_reset_s,
            on_change=on_breaker_change,
            clock=clock,
        )
        # One controller shared by all threads: tenacity keeps its per-call state in a thread-local.
        self._retrying = tenacity.Retrying(
            sleep=sleep,
            stop=tenacity.stop_after_attempt(config.retry_attempts),
            wait=_WaitRetryAfter(
                tenacity.wait_exponential_jitter(
                    multiplier=config.retry_backoff, max=_MAX_BACKOFF_S, jitter=config.retry_backoff
                )
            ),
            retry=tenacity.retry_if_result(_is_retryable),
            retry_error_callback=_last_attempt,
            reraise=True,
        )

    @property
    def name(self) -> str:
        """Return the upstream's name ("legacy", "cloud")."""
        return self._name

    @property
    def breaker_state(self) -> str:
        """Return "closed", "open" or "half-open"."""
        return self._breaker.state

    def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """Make one logical call, repeating only what is safe; return any HTTP answer, else raise an UpstreamError."""
        try:
            trial = self._breaker.admit()
        except BreakerOpen as exc:
            raise UpstreamUnavailable(self._name, reason="breaker open", retry_after=exc.retry_after) from None
        if not self._slots.acquire(timeout=self._queue_timeout):
            self._breaker.abandon(trial)
            raise UpstreamUnavailable(self._name, reason="saturated", retry_after=1.0)
        started = time.perf_counter()
        try:
            try:
                outcome = self._retrying(self._attempt, request)
                attempts: int = self._retrying.statistics["attempt_number"]
            finally:
                self._slots.release()
        except BaseException:
            self._breaker.abandon(trial)
            raise
        self._breaker.record(trial, outcome.failed)
        if outcome.error is not None:
            raise outcome.error
        response = outcome.response
        assert response is not None
        return UpstreamResponse(
            status=response.status_code,
            headers=response.headers,
            body=response.content,
            elapsed_ms=(time.perf_counter() - started) * 1000.0,
            attempts=attempts,
        )

    def probe(self, path: str = "/healthz") -> bool:
        """Return True if the upstream answers below 500 within a short timeout; no retries, breaker untouched."""
        try:
            response = self._session.get(self._base_url + path, timeout=self._probe_timeout, allow_redirects=False)
        except requests.RequestException:
            return False
        return response.status_code < 500

    def close(self) -> None:
        """Close the pooled connections; the client must not be used afterwards."""
        self._session.close()

    def _attempt(self, request: UpstreamRequest) -> _Attempt:
        """Make one HTTP exchange and classify it; never raises for an upstream failure."""
        try:
            response = self._session.request(
                request.method,
                self._base_url + request.path,
                params=request.params,
                data=request.body,
                json=request.json,
                headers=request.headers,
                timeout=request.timeout or self._timeout,
                # A redirect is the upstream's answer for the caller; following it could replay a write elsewhere.
                allow_redirects=False,
            )
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            return self._failed_attempt(exc, request.safe_to_repeat)
        if response.status_code in _RETRYABLE_STATUS and request.safe_to_repeat:
            wait = _retry_after_seconds(response.headers.get("Retry-After"))
            return _Attempt(response=response, retryable=wait <= _MAX_RETRY_AFTER_S, wait_at_least=wait)
        return _Attempt(response=response)

    def _failed_attempt(self, exc: requests.RequestException, safe_to_repeat: bool) -> _Attempt:
        error: UpstreamError
        if _never_sent(exc):
            error = UpstreamNotSent(self._name, reason="unreachable", retry_after=1.0, message=f"not sent: {exc}")
            retryable = True
        elif _is_garbage(exc):
            error = UpstreamProtocolError(self._name, f"bad answer: {exc}")
            retryable = safe_to_repeat
        else:
            error = UpstreamTimeout(self._name, sent=True, message=f"no answer after send: {exc}")
            retryable = safe_to_repeat
        error.__cause__ = exc
        return _Attempt(error=error, retryable=retryable)
