"""The adapter port and the pass-through adapter used for capabilities without a translation."""

from __future__ import annotations

from abc import ABC, abstractmethod

from connectors.upstream import UpstreamRequest, UpstreamResponse
from core.calls import Call, Outcome

PASS_HEADERS = ("content-type",)


class AdapterInputError(ValueError):
    """The portal request cannot be translated: the caller gets 400 with this detail; nothing was sent."""

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail, self.field = detail, field


class LookupUnknown(Exception):
    """A lookup got no usable answer: the write is still in doubt (never read this as 'not found')."""


class Adapter(ABC):
    """Translate one capability between the portal API and one upstream's API, with no I/O of its own."""

    @abstractmethod
    def request(self, call: Call) -> UpstreamRequest:
        """Return the upstream request for this call, or raise AdapterInputError."""

    @abstractmethod
    def outcome(self, call: Call, response: UpstreamResponse) -> Outcome:
        """Return the portal outcome for the upstream's response."""

    def lookup(self, call: Call) -> UpstreamRequest | None:
        """Return a request that finds this write's result by its reference, or None when it cannot be looked up."""
        return None

    def lookup_outcome(self, call: Call, response: UpstreamResponse) -> Outcome | None:
        """Return the write's outcome from a lookup, None when the upstream has no record of it, else LookupUnknown."""
        return None


class Passthrough(Adapter):
    """Send the portal request unchanged and return the upstream's answer unchanged."""

    def request(self, call: Call) -> UpstreamRequest:
        headers = {"Content-Type": call.headers.get("content-type", "application/json")} if call.body else {}
        return UpstreamRequest(
            method=call.method, path=call.path, params=dict(call.query) or None, body=call.body or None, headers=headers
        )

    def outcome(self, call: Call, response: UpstreamResponse) -> Outcome:
        headers = {k: v for k, v in response.headers.items() if k.lower() in PASS_HEADERS}
        return Outcome(status=response.status, raw=response.body, headers=headers)
