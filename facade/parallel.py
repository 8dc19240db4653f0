"""Mode `parallel` and the shadow of a call: the primary answers, the other side is called and compared off-path.

Safety rules kept here, whatever the route says: a shadow is never retried (its clients make one attempt), every
shadow call carries `X-Strangler-Shadow: 1`, and a write is only ever shadowed to the capability's secondary (the
cloud side, which honours that header with a dry run) — never to the primary (legacy), which has no dry run and
would move real money. Such calls are skipped and counted as `write_not_shadowed`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.upstream import UpstreamTimeout
from core.calls import Call, Outcome
from core.rules import CapabilitySpec
from facade.dispatch import Dispatcher, InDoubt
from facade.metrics import FacadeMetrics
from facade.modes import Mode, Routed
from facade.shadow import Evidence, ShadowPool
from parallel_run.compare import classify, compare_outcomes, noise_between
from parallel_run.model import Comparison

SHADOW_HEADERS = {"X-Strangler-Shadow": "1"}


def sampled(request_id: str, salt: str, percent: float) -> bool:
    """Return whether a request falls in the first `percent` of [0, 100) by a hash of its id (stable per request)."""
    if percent >= 100:
        return True
    if percent <= 0:
        return False
    digest = hashlib.blake2b(f"{salt}\0{request_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 < percent * 100


def body_of(outcome: Outcome) -> Any:
    """Return an outcome's body as JSON values (raw bytes parsed; text kept as a string when it is not JSON)."""
    if outcome.raw is None:
        return outcome.body
    try:
        return json.loads(outcome.raw)
    except ValueError:
        return outcome.raw.decode(errors="replace")


@dataclass(frozen=True)
class ShadowResult:
    """What the shadow side answered: a status and body, or the verdict that says why there is none."""

    status: int | None
    body: Any
    ms: float
    failure: str | None  # None, "shadow_error" or "shadow_timeout"


class Shadower:
    """Hand the shadow half of a call to the pool, then compare both outcomes and keep the evidence, off-path."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        pool: ShadowPool,
        evidence: Evidence,
        metrics: FacadeMetrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.dispatcher, self.pool, self.evidence, self.metrics, self.clock = dispatcher, pool, evidence, metrics, clock

    def shadow(self, routed: Routed, primary: Outcome, primary_side: str, shadow_side: str) -> None:
        """Queue the shadow call for a call `primary_side` answered with `primary`; never blocks, never raises."""
        cap, call = routed.cap, routed.call
        if cap.is_write and shadow_side != cap.secondary:
            self._skip(cap.name, "write_not_shadowed")
        elif not sampled(call.request_id, cap.name, cap.parallel.sample_percent):
            self._skip(cap.name, "not_sampled")
        elif not self.pool.submit(lambda: self.compare(call, cap, primary, primary_side, shadow_side, self.clock())):
            self._skip(cap.name, "queue_full")

    def _skip(self, capability: str, reason: str) -> None:
        self.evidence.skip(capability, reason)
        self.metrics.shadow_skips.labels(capability, reason).inc()

    def compare(
        self, call: Call, cap: CapabilitySpec, primary: Outcome, primary_side: str, shadow_side: str, at: datetime
    ) -> Comparison:
        """Call the shadow side, learn noise from a second primary answer when sampled, compare, and keep it."""
        shadow = self.call(shadow_side, cap, call)
        primary_body = body_of(primary)
        diffs: tuple[Any, ...] = ()
        if shadow.failure is None:
            assert shadow.status is not None
            if not cap.is_write and sampled(call.request_id, "noise:" + cap.name, cap.parallel.noise_percent):
                again = self.call(primary_side, cap, call)
                if again.failure is None and again.status == primary.status:
                    self.evidence.noise(cap.name, noise_between(primary_body, again.body, cap.compare))
            diffs = compare_outcomes(primary.status, primary_body, shadow.status, shadow.body, cap.compare)
            verdict = classify(diffs, self.evidence.noise_paths(cap.name))
        else:
            verdict = shadow.failure
        comparison = Comparison(
            at=at, capability=cap.name, request_id=call.request_id, primary_side=primary_side,
            shadow_side=shadow_side, primary_status=primary.status, shadow_status=shadow.status,
            primary_ms=primary.latency_ms, shadow_ms=shadow.ms, verdict=verdict, differences=tuple(diffs),
        )  # fmt: skip
        self.evidence.comparison(comparison)
        self.metrics.comparisons.labels(cap.name, verdict).inc()
        self.metrics.shadow_latency.labels(cap.name, shadow_side).observe(shadow.ms / 1000)
        return comparison

    def call(self, side: str, cap: CapabilitySpec, call: Call) -> ShadowResult:
        """Make one shadow call (marked, with the shadow timeout, never retried) and classify a failure."""
        started = time.perf_counter()
        try:
            outcome = self.dispatcher.send(
                side, cap, call, headers=SHADOW_HEADERS, read_timeout_ms=cap.parallel.shadow_timeout_ms
            )
        except InDoubt as exc:
            # A shadow write whose fate is unknown is only recorded: it was a dry run, there is nothing to resolve.
            ms = (time.perf_counter() - started) * 1000
            verdict = "shadow_timeout" if isinstance(exc.__cause__, UpstreamTimeout) else "shadow_error"
            return ShadowResult(None, None, ms, verdict)
        except Exception:
            return ShadowResult(None, None, (time.perf_counter() - started) * 1000, "shadow_error")
        ms = (time.perf_counter() - started) * 1000
        if outcome.status == 504:
            return ShadowResult(outcome.status, body_of(outcome), ms, "shadow_timeout")
        if outcome.status >= 500:
            return ShadowResult(outcome.status, body_of(outcome), ms, "shadow_error")
        return ShadowResult(outcome.status, body_of(outcome), ms, None)


class ParallelMode(Mode):
    """The parallel primary answers the caller; the other side gets the same call off the caller's path."""

    def __init__(self, dispatcher: Dispatcher, shadower: Shadower) -> None:
        self.dispatcher, self.shadower = dispatcher, shadower

    def handle(self, routed: Routed) -> Outcome:
        cap = routed.cap
        outcome = self.dispatcher.send(cap.parallel_primary, cap, routed.call)
        self.shadower.shadow(routed, outcome, cap.parallel_primary, cap.parallel_shadow)
        return outcome
