"""HTTP client for one upstream (legacy or cloud): keep-alive pool, bounded concurrency, safe retries, circuit breaker.

Retry rule: a request that never left (connect refused, connect timeout, DNS, certificate rejected) may be repeated
whatever its method; once it was sent, only a request marked ``safe_to_repeat`` is repeated (after a read timeout, a
dropped connection, a garbage answer, or a 502/503/504 whose Retry-After, if any, is at most one second). A write that
was sent and got no answer raises ``UpstreamTimeout(sent=True)``: its outcome is unknown and the caller resolves it.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import tenacity
from urllib3 import BaseHTTPResponse
from urllib3.exceptions import ClosedPoolError, DecodeError, HTTPError, ProtocolError, ProxyError, SSLError
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError
from urllib3.util import Timeout

from connectors.breaker import BreakerOpen, CallBreaker
from connectors.http_pool import DEFAULT_HEADERS, NO_RETRY, ResponseHeaders, TlsConfig, make_pool
from connectors.upstream_errors import (
    UpstreamError,
    UpstreamNotSent,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
    classify,
)

__all__ = [
    "TlsConfig",
    "UpstreamClient",
    "UpstreamConfig",
    "UpstreamError",
    "UpstreamNotSent",
    "UpstreamProtocolError",
    "UpstreamRequest",
    "UpstreamResponse",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]

_RETRYABLE_STATUS = frozenset({502, 503, 504})
_FAILURE_STATUS = frozenset({500, 502, 503, 504})
_MAX_RETRY_AFTER_S = 1.0
_MAX_BACKOFF_S = 1.0
_PROBE_TIMEOUT_CAP_S = 1.0
_TIMEOUT_CACHE_SIZE = 64
# Every failure of one exchange that urllib3 raises with retries off; anything else (a bad URL) is a bug, not the
# upstream's doing, and propagates.
_EXCHANGE_ERRORS = (Urllib3TimeoutError, ProtocolError, SSLError, DecodeError, ProxyError, ClosedPoolError)


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
    tls: TlsConfig = field(default_factory=TlsConfig)

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


@dataclass(slots=True)
class _Attempt:
    """What one attempt produced (an answer or a classified error) and whether another attempt is allowed."""

    response: BaseHTTPResponse | None = None
    error: UpstreamError | None = None
    retryable: bool = False
    wait_at_least: float = 0.0

    @property
    def failed(self) -> bool:
        """True if the breaker should count this as the upstream failing."""
        return self.error is not None or (self.response is not None and self.response.status in _FAILURE_STATUS)


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


class UpstreamClient:
    """Calls one upstream through a shared keep-alive pool; thread-safe; one instance per upstream per process.

    The circuit breaker counts each logical call once, by its final outcome after retries: a connection error, a
    timeout, a garbage answer or a 500/502/503/504 is a failure, anything else (2xx, 3xx, 4xx) a success. Retries inside
    one call therefore cannot open the breaker on their own, and an open breaker refuses whole calls. Calls refused for
    saturation or by the breaker are not counted. A redirect is returned as the answer, never followed; no cookie is
    ever stored or sent back.
    """

    def __init__(
        self,
        config: UpstreamConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        on_breaker_change: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._name = config.name
        try:
            self._pool, self._prefix = make_pool(
                config.base_url,
                maxsize=config.pool_size,
                connect_timeout=config.connect_timeout,
                read_timeout=config.read_timeout,
                tls=config.tls,
            )
        except ValueError as exc:
            raise ValueError(f"upstream {config.name!r}: {exc}") from exc
        self._timeouts: dict[tuple[float, float], Timeout] = {}
        self._timeout = self._timeout_for((config.connect_timeout, config.read_timeout))
        self._probe_timeout = Timeout(
            connect=min(config.connect_timeout, _PROBE_TIMEOUT_CAP_S),
            read=min(config.read_timeout, _PROBE_TIMEOUT_CAP_S),
        )
        self._queue_timeout = config.queue_timeout
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._breaker = CallBreaker(
            config.name,
            fail_max=config.breaker_fail_max,
            reset_s=config.breaker_reset_s,
            on_change=on_breaker_change,
            clock=clock,
        )
        self._max_attempts = config.retry_attempts
        # One controller shared by all threads: tenacity keeps its per-call state in a thread-local. It only runs once
        # a first attempt turned out retryable; the common case never enters it.
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
                outcome = self._attempt(request)
                attempts = 1
                if outcome.retryable and self._max_attempts > 1:
                    outcome, attempts = self._retry(request, outcome)
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
            status=response.status,
            headers=ResponseHeaders(response.headers),
            body=response.data,
            elapsed_ms=(time.perf_counter() - started) * 1000.0,
            attempts=attempts,
        )

    def probe(self, path: str = "/healthz") -> bool:
        """Return True if the upstream answers below 500 within a short timeout; no retries, breaker untouched."""
        try:
            response = self._pool.urlopen(
                "GET", self._prefix + path, retries=NO_RETRY, redirect=False, timeout=self._probe_timeout,
                headers=dict(DEFAULT_HEADERS), assert_same_host=False,
            )  # fmt: skip
        except (HTTPError, OSError):
            return False
        return response.status < 500

    def close(self) -> None:
        """Close the pooled connections; the client must not be used afterwards."""
        self._pool.close()

    def _retry(self, request: UpstreamRequest, first: _Attempt) -> tuple[_Attempt, int]:
        """Carry on after a retryable first attempt under the retry policy; return the last attempt and the count."""
        made = [first]  # tenacity's first "attempt" hands back the one already made, then real ones follow

        def attempt() -> _Attempt:
            return made.pop() if made else self._attempt(request)

        outcome: _Attempt = self._retrying(attempt)
        attempts: int = self._retrying.statistics["attempt_number"]
        return outcome, attempts

    def _timeout_for(self, timeout: tuple[float, float]) -> Timeout:
        """Return the urllib3 Timeout for (connect, read), built once per distinct pair."""
        found = self._timeouts.get(timeout)
        if found is None:
            found = Timeout(connect=timeout[0], read=timeout[1])
            if len(self._timeouts) < _TIMEOUT_CACHE_SIZE:  # per-capability pairs are few; never grow without bound
                self._timeouts[timeout] = found
        return found

    def _attempt(self, request: UpstreamRequest) -> _Attempt:
        """Make one HTTP exchange and classify it; never raises for an upstream failure."""
        headers = dict(request.headers)
        given = {name.lower() for name in headers}
        for name, value in DEFAULT_HEADERS.items():
            if name.lower() not in given:
                headers[name] = value
        body = request.body
        if request.json is not None:
            body = json.dumps(request.json, allow_nan=False).encode()
            if "content-type" not in given:
                headers["Content-Type"] = "application/json"
        url = self._prefix + request.path
        if request.params:
            url += ("&" if "?" in url else "?") + urlencode(request.params)
        try:
            response = self._pool.urlopen(
                request.method,
                url,
                body=body,
                headers=headers,
                retries=NO_RETRY,
                # A redirect is the upstream's answer for the caller; following it could replay a write elsewhere.
                redirect=False,
                assert_same_host=False,
                timeout=self._timeout if request.timeout is None else self._timeout_for(request.timeout),
                preload_content=True,
            )
        except _EXCHANGE_ERRORS as exc:
            error, retryable = classify(self._name, exc, request.safe_to_repeat)
            return _Attempt(error=error, retryable=retryable)
        if response.status in _RETRYABLE_STATUS and request.safe_to_repeat:
            wait = _retry_after_seconds(response.headers.get("Retry-After"))
            return _Attempt(response=response, retryable=wait <= _MAX_RETRY_AFTER_S, wait_at_least=wait)
        return _Attempt(response=response)
