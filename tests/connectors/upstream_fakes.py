"""Builders shared by the UpstreamClient unit tests: a hand-moved clock, a realistic refusal, request shorthands."""

from __future__ import annotations

from typing import Any

import requests
import responses
from urllib3.exceptions import MaxRetryError, NewConnectionError

from connectors.upstream import UpstreamClient, UpstreamConfig, UpstreamRequest

BASE = "http://legacy.test:8001"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_client(
    sleeps: list[float],
    clock: FakeClock | None = None,
    changes: list[tuple[str, str]] | None = None,
    **overrides: Any,
) -> UpstreamClient:
    """Build a client for BASE whose backoff sleeps are recorded, not slept."""
    config = UpstreamConfig(name="legacy", base_url=BASE, **overrides)
    return UpstreamClient(
        config,
        sleep=sleeps.append,
        clock=clock or FakeClock(),
        on_breaker_change=(lambda old, new: changes.append((old, new))) if changes is not None else None,
    )


def refused() -> requests.ConnectionError:
    """The exception requests raises when the TCP connect is refused (the request never left)."""
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")  # type: ignore[arg-type]
    return requests.ConnectionError(MaxRetryError(None, BASE, reason))  # type: ignore[arg-type]


def get(path: str = "/accounts/1", **kw: Any) -> UpstreamRequest:
    return UpstreamRequest("GET", path, safe_to_repeat=True, **kw)


def post(path: str = "/payments", **kw: Any) -> UpstreamRequest:
    return UpstreamRequest("POST", path, json={"amount": "10.00"}, **kw)


def timeout_of(call: responses.Call) -> Any:
    """The (connect, read) timeout requests was given for a recorded call."""
    return call.request.req_kwargs["timeout"]  # type: ignore[attr-defined]
