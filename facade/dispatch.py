"""Send one call to one upstream through its adapter and turn every failure into a defined outcome."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from connectors.adapters import Adapter, LookupUnknown, Passthrough
from connectors.upstream import (
    UpstreamClient,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from core.calls import Call, Outcome
from core.problems import problem
from core.rules import CapabilitySpec
from facade.metrics import FacadeMetrics

IN_DOUBT_STATUSES = frozenset({502, 504})


class InDoubt(Exception):
    """A write reached the upstream but its outcome is unknown; it must not be retried blindly."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.upstream = upstream


class Dispatcher:
    """Route a call to a named upstream: adapter out, client, adapter back, with failures mapped to problems."""

    def __init__(
        self,
        clients: Mapping[str, UpstreamClient],
        adapters: Mapping[str, Adapter],
        metrics: FacadeMetrics,
    ) -> None:
        self.clients, self.adapters, self.metrics = clients, adapters, metrics
        self._passthrough = Passthrough()

    def adapter_for(self, cap: CapabilitySpec, upstream: str) -> Adapter:
        name = cap.adapters.get(upstream)
        return self.adapters[name] if name else self._passthrough

    def _timeout(self, cap: CapabilitySpec, upstream: str) -> tuple[float, float] | None:
        if cap.read_timeout_ms is None:
            return None
        config = self.clients[upstream].config
        return (config.connect_timeout, cap.read_timeout_ms / 1000)

    def send(
        self,
        upstream: str,
        cap: CapabilitySpec,
        call: Call,
        *,
        headers: Mapping[str, str] | None = None,
        read_timeout_ms: int | None = None,
    ) -> Outcome:
        """Return the upstream's outcome for this call; raise InDoubt when a write's fate is unknown.

        `headers` are added to the adapter's request (a shadow call's `X-Strangler-Shadow`); `read_timeout_ms`
        replaces the rule's read timeout. AdapterInputError propagates before anything is sent.
        """
        adapter = self.adapter_for(cap, upstream)
        request = adapter.request(call)
        if read_timeout_ms is not None:
            timeout: tuple[float, float] | None = (
                self.clients[upstream].config.connect_timeout,
                read_timeout_ms / 1000,
            )
        else:
            timeout = request.timeout or self._timeout(cap, upstream)
        request = replace(
            request,
            headers={**request.headers, **(headers or {}), "X-Request-ID": call.request_id},
            timeout=timeout,
            safe_to_repeat=request.safe_to_repeat and not cap.is_write,
        )
        try:
            response = self.clients[upstream].send(request)
        except UpstreamUnavailable as exc:
            self.metrics.upstream_errors.labels(upstream, "unavailable").inc()
            retry = str(max(1, round(exc.retry_after)))
            return problem(
                503, "upstream-unavailable", "Upstream unavailable", f"{upstream}: {exc.reason}",
                headers={"Retry-After": retry}, upstream=upstream,
            )  # fmt: skip
        except UpstreamTimeout as exc:
            self.metrics.upstream_errors.labels(upstream, "timeout").inc()
            if cap.is_write and exc.sent:
                raise InDoubt(upstream) from exc
            return problem(504, "upstream-timeout", "Upstream timed out", f"{upstream} did not answer in time")
        except UpstreamProtocolError:
            self.metrics.upstream_errors.labels(upstream, "protocol").inc()
            if cap.is_write:
                raise InDoubt(upstream) from None
            return problem(502, "upstream-error", "Upstream error", f"{upstream} sent an unreadable answer")
        except UpstreamError:
            self.metrics.upstream_errors.labels(upstream, "other").inc()
            if cap.is_write:
                raise InDoubt(upstream) from None
            return problem(502, "upstream-error", "Upstream error", f"{upstream} failed")
        if cap.is_write and response.status in IN_DOUBT_STATUSES:
            # A gateway error after a write was sent says nothing about whether it was executed.
            self.metrics.upstream_errors.labels(upstream, f"http_{response.status}").inc()
            raise InDoubt(upstream)
        outcome = adapter.outcome(call, response)
        return replace(outcome, upstream=upstream, latency_ms=response.elapsed_ms)

    def lookup(self, upstream: str, cap: CapabilitySpec, call: Call) -> Outcome | None:
        """Return the real outcome found by reference, None when the upstream has no record, else LookupUnknown."""
        adapter = self.adapter_for(cap, upstream)
        request = adapter.lookup(call)
        if request is None:
            raise LookupUnknown(f"{cap.name} has no lookup on {upstream}")
        request = replace(request, headers={**request.headers, "X-Request-ID": call.request_id})
        try:
            response = self.clients[upstream].send(request)
        except UpstreamError as exc:
            raise LookupUnknown(f"{upstream}: {exc}") from exc
        outcome = adapter.lookup_outcome(call, response)
        return replace(outcome, upstream=upstream) if outcome else None
