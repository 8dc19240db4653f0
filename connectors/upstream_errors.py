"""What can go wrong calling an upstream, and how a urllib3 failure maps onto it (sent or not, answered or not)."""

from __future__ import annotations

import http.client
import ssl

from urllib3.exceptions import ClosedPoolError, ConnectTimeoutError, DecodeError, ProtocolError, SSLError


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


def never_sent(exc: Exception) -> bool:
    """True when the failure happened before any byte of the request left: connect refused/timeout, DNS, bad cert,
    or a pool already closed (the client is shutting down)."""
    if isinstance(exc, ConnectTimeoutError | ClosedPoolError):  # ConnectTimeoutError: also NewConnectionError, DNS
        return True
    # Other TLS errors can also come from reading the answer, so only a rejected certificate proves "not sent".
    return isinstance(exc, SSLError) and any(isinstance(arg, ssl.CertificateError) for arg in exc.args)


def is_garbage(exc: Exception) -> bool:
    """True when the upstream answered, but not with HTTP (as opposed to hanging up on us)."""
    if isinstance(exc, DecodeError):
        return True
    if not (isinstance(exc, ProtocolError) and len(exc.args) > 1):
        return False
    inner = exc.args[1]
    # RemoteDisconnected is a BadStatusLine too, and IncompleteRead is a truncated body: both are hang-ups.
    return isinstance(inner, http.client.HTTPException) and not isinstance(
        inner, ConnectionError | http.client.IncompleteRead
    )


def classify(upstream: str, exc: Exception, safe_to_repeat: bool) -> tuple[UpstreamError, bool]:
    """Return the error one failed attempt amounts to and whether the attempt may be repeated.

    Never sent: ``UpstreamNotSent``, repeatable whatever the method. Sent and answered with garbage:
    ``UpstreamProtocolError``. Sent and not answered (read timeout, hang-up, reset): ``UpstreamTimeout(sent=True)``.
    Once sent, only a ``safe_to_repeat`` request may be repeated.
    """
    error: UpstreamError
    if never_sent(exc):
        error = UpstreamNotSent(upstream, reason="unreachable", retry_after=1.0, message=f"not sent: {exc}")
        retryable = True
    elif is_garbage(exc):
        error = UpstreamProtocolError(upstream, f"bad answer: {exc}")
        retryable = safe_to_repeat
    else:
        error = UpstreamTimeout(upstream, sent=True, message=f"no answer after send: {exc}")
        retryable = safe_to_repeat
    error.__cause__ = exc
    return error, retryable
