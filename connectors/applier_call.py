"""Apply one event envelope to the legacy API through its capability's adapter, and classify what came back."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from connectors.adapters import Adapter, AdapterInputError
from connectors.upstream import (
    UpstreamClient,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from core.calls import Call, Outcome
from core.events import Envelope
from core.rules import WERKZEUG_PARAM, CapabilitySpec, RuleSet

log = logging.getLogger("strangler.applier")

UPSTREAM = "legacy"  # events are applied to the system being strangled
TRANSIENT_4XX = frozenset({408, 425, 429})


class ApplierConfigError(ValueError):
    """The rules cannot be applied: an events capability without a usable legacy adapter."""


@dataclass(frozen=True)
class Result:
    """What one attempt to apply an event did: applied, failed for good, or failed for now (retry later)."""

    kind: Literal["applied", "permanent", "transient"]
    status: int
    reason: str = ""
    error: Mapping[str, Any] = field(default_factory=dict)  # {status, type, title, detail} for event_requests.error
    sent: bool = True  # legacy may have seen the call: it counts against max_attempts
    retry_after: float = 0.0  # the least wait the upstream asked for (breaker open)


def events_capabilities(rules: RuleSet, adapters: Mapping[str, Adapter]) -> dict[str, CapabilitySpec]:
    """Return the capabilities with an events block, or raise ApplierConfigError if one has no legacy adapter."""
    caps: dict[str, CapabilitySpec] = {}
    for cap in rules.capabilities.values():
        if cap.events is None:
            continue
        name = cap.adapters.get(UPSTREAM)
        if name is None or name not in adapters:
            raise ApplierConfigError(
                f"{rules.source}:{cap.line}: [{cap.name}] events need a known {UPSTREAM} adapter, got {name!r}"
            )
        caps[cap.name] = cap
    return caps


def problem_summary(outcome: Outcome) -> dict[str, Any]:
    """Return {status, type, title, detail} of an outcome's problem body (what event_requests.error keeps)."""
    body = outcome.body if isinstance(outcome.body, dict) else {}
    summary: dict[str, Any] = {"status": outcome.status}
    for member in ("type", "title", "detail"):
        if body.get(member):
            summary[member] = body[member]
    return summary


class EventCaller:
    """Builds the capability's call from an envelope and sends it to legacy; never raises for an upstream failure."""

    def __init__(self, caps: Mapping[str, CapabilitySpec], adapters: Mapping[str, Adapter], client: UpstreamClient):
        self.caps = caps
        self.adapters = adapters
        self.client = client

    def call_for(self, envelope: Envelope) -> Call:
        """Return the Call the facade accepted, named by the event id (legacy dedups on it)."""
        cap = self.caps[envelope.capability]
        params = {str(k): str(v) for k, v in dict(envelope.payload.get("path_params") or {}).items()}
        path = WERKZEUG_PARAM.sub(lambda m: params.get(m.group(1), m.group(0)), cap.path)
        return Call(
            capability=cap.name,
            method=cap.method,
            path=path,
            path_params=params,
            body=json.dumps(envelope.payload.get("body"), separators=(",", ":")).encode(),
            request_id=envelope.request_id,
            client_id=str(envelope.payload.get("client_id") or ""),
            resource_id=envelope.id,
            headers={"content-type": "application/json"},
        )

    def apply(self, envelope: Envelope) -> Result:
        """Make one logical call to legacy for this event and classify its outcome."""
        adapter = self.adapters[self.caps[envelope.capability].adapters[UPSTREAM]]
        call = self.call_for(envelope)
        try:
            request = adapter.request(call)
        except AdapterInputError as exc:
            error = {"status": 400, "title": "Invalid request", "detail": exc.detail}
            return Result("permanent", 400, f"refused before sending: {exc.detail}", error, sent=False)
        # The event id travels as the upstream's idempotency reference, so repeating the call cannot apply it twice.
        request = replace(request, safe_to_repeat=True, headers={**request.headers, "X-Request-ID": call.request_id})
        try:
            response = self.client.send(request)
            outcome = adapter.outcome(call, response)
        except UpstreamUnavailable as exc:
            error = {"status": 503, "title": "Core system unavailable", "detail": str(exc)}
            return Result("transient", 503, f"{UPSTREAM} {exc.reason}", error, sent=False, retry_after=exc.retry_after)
        except UpstreamTimeout as exc:
            error = {"status": 504, "title": "Core system timeout", "detail": str(exc)}
            return Result("transient", 504, f"{UPSTREAM} timed out", error, sent=exc.sent)
        except UpstreamProtocolError as exc:
            error = {"status": 502, "title": "Core system error", "detail": str(exc)}
            return Result("transient", 502, f"{UPSTREAM} bad answer", error)
        except Exception as exc:  # an adapter that cannot read the answer: retried, then dead-lettered
            log.exception("applying event %s failed unexpectedly", envelope.id)
            error = {"status": 502, "title": "Applier error", "detail": f"{type(exc).__name__}: {exc}"}
            return Result("transient", 502, f"unexpected {type(exc).__name__}", error)
        summary = problem_summary(outcome)
        if 200 <= outcome.status < 300:
            return Result("applied", outcome.status)
        reason = f"{UPSTREAM} answered {outcome.status}: " + str(summary.get("detail") or summary.get("title") or "")
        if 400 <= outcome.status < 500 and outcome.status not in TRANSIENT_4XX:
            return Result("permanent", outcome.status, reason.rstrip(": "), summary)
        return Result("transient", outcome.status, reason.rstrip(": "), summary)
