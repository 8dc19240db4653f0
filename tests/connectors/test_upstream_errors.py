"""How each urllib3 failure is classified: never sent, sent without an answer, or answered with garbage."""

from __future__ import annotations

import http.client
import ssl

import pytest
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    DecodeError,
    IncompleteRead,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from connectors.upstream_errors import UpstreamNotSent, UpstreamProtocolError, UpstreamTimeout, classify

NEVER_SENT = [
    NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused"),  # type: ignore[arg-type]
    ConnectTimeoutError(None, "connect timed out"),
    NameResolutionError("legacy.test", None, OSError("no such host")),  # type: ignore[arg-type]
    SSLError(ssl.SSLCertVerificationError(1, "certificate verify failed")),
    ClosedPoolError(None, "Pool is closed."),  # type: ignore[arg-type]
]
NO_ANSWER = [
    ReadTimeoutError(None, "/x", "Read timed out."),  # type: ignore[arg-type]
    ProtocolError("Connection aborted.", http.client.RemoteDisconnected("closed")),
    ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
    ProtocolError("Connection broken", IncompleteRead(10, 100)),
    ProtocolError("Connection broken", http.client.IncompleteRead(b"", 100)),
    SSLError(ssl.SSLError(1, "tlsv13 alert certificate required")),
]
GARBAGE = [
    ProtocolError("Connection aborted.", http.client.BadStatusLine("SPROCKETS 42")),
    ProtocolError("Connection aborted.", http.client.LineTooLong("header line")),
    DecodeError("bad gzip"),
]


@pytest.mark.parametrize("safe", [True, False])
@pytest.mark.parametrize("exc", NEVER_SENT, ids=repr)
def test_never_sent_is_retryable_whatever_the_method(exc: Exception, safe: bool) -> None:
    error, retryable = classify("legacy", exc, safe)
    assert isinstance(error, UpstreamNotSent)
    assert (error.reason, error.upstream, error.__cause__, retryable) == ("unreachable", "legacy", exc, True)


@pytest.mark.parametrize("safe", [True, False])
@pytest.mark.parametrize("exc", NO_ANSWER, ids=repr)
def test_sent_without_answer_is_in_doubt_and_retryable_only_when_safe(exc: Exception, safe: bool) -> None:
    error, retryable = classify("legacy", exc, safe)
    assert isinstance(error, UpstreamTimeout)
    assert (error.sent, retryable) == (True, safe)


@pytest.mark.parametrize("safe", [True, False])
@pytest.mark.parametrize("exc", GARBAGE, ids=repr)
def test_garbage_is_a_protocol_error_retryable_only_when_safe(exc: Exception, safe: bool) -> None:
    error, retryable = classify("legacy", exc, safe)
    assert isinstance(error, UpstreamProtocolError)
    assert retryable is safe
