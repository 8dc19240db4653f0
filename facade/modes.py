"""Route modes as strategies: one small class per mode, one method, registered in an explicit mapping."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from core.calls import Call, Outcome
from core.problems import problem
from core.routestore import RouteState
from core.rules import MODES, CapabilitySpec
from facade.dispatch import Dispatcher
from facade.freshness import ReplicaFreshness


@dataclass(frozen=True)
class Routed:
    """A call with the capability it matched and the route it is answered by."""

    call: Call
    cap: CapabilitySpec
    route: RouteState


class Mode(ABC):
    """Answer one routed call."""

    @abstractmethod
    def handle(self, routed: Routed) -> Outcome:
        """Return the caller's outcome (InDoubt and AdapterInputError propagate)."""


class LegacyMode(Mode):
    """The capability's primary (legacy) answers, synchronously."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def handle(self, routed: Routed) -> Outcome:
        return self.dispatcher.send(routed.cap.primary, routed.cap, routed.call)


class CloudMode(Mode):
    """The capability's secondary (cloud) answers, unless it reads a replica that lags more than the rule allows."""

    def __init__(self, dispatcher: Dispatcher, freshness: ReplicaFreshness) -> None:
        self.dispatcher, self.freshness = dispatcher, freshness

    def handle(self, routed: Routed) -> Outcome:
        cap = routed.cap
        if cap.max_lag_ms is not None and not self.freshness.within(cap.max_lag_ms):
            self.dispatcher.metrics.stale_fallbacks.labels(cap.name).inc()
            return self.dispatcher.send(cap.primary, cap, routed.call)
        return self.dispatcher.send(cap.secondary, cap, routed.call)


def canary_bucket(capability: str, key: str) -> float:
    """Return a stable position in [0, 100) for a key: the same key always lands in the same place."""
    digest = hashlib.blake2b(f"{capability}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 / 100


def canary_side(cap: CapabilitySpec, percent: float, key: str | None) -> str:
    """Return the upstream for a key: cloud when its bucket is below percent, so raising percent only adds keys."""
    if key is None:
        return cap.primary
    return cap.secondary if canary_bucket(cap.name, key) < percent else cap.primary


# Queues the other side of an answered call for comparison: (routed, outcome, answered by, shadow side) -> None.
ShadowHook = Callable[[Routed, Outcome, str, str], None]


class CanaryMode(Mode):
    """Cloud answers for `percent` of keys (sticky by a request field), legacy for the rest; with `canary.shadow`
    the other side is shadowed off the caller's path (`shadow` decides what is safe to send)."""

    def __init__(self, dispatcher: Dispatcher, shadow: ShadowHook | None = None) -> None:
        self.dispatcher, self.shadow = dispatcher, shadow

    def handle(self, routed: Routed) -> Outcome:
        key = routed.call.field(routed.cap.canary.sticky_by)
        if key is None and routed.cap.is_write:
            field = routed.cap.canary.sticky_by
            return problem(400, "invalid-request", "Missing routing field", f"{field} is required", field=field)
        side = canary_side(routed.cap, routed.route.percent, key)
        outcome = self.dispatcher.send(side, routed.cap, routed.call)
        if self.shadow is not None and routed.cap.canary.shadow:
            other = routed.cap.secondary if side == routed.cap.primary else routed.cap.primary
            self.shadow(routed, outcome, side, other)
        return outcome


def check_modes(modes: dict[str, Mode]) -> dict[str, Mode]:
    """Return the strategies if there is exactly one per mode name of the route model, else fail loudly."""
    assert set(modes) == set(MODES), f"strategies {sorted(modes)} do not match the route model's {sorted(MODES)}"
    return modes


def upstream_of(routed: Routed) -> str:
    """Return the upstream this route sends the call to (for resolving a write whose worker died mid-call)."""
    if routed.route.mode == "cloud":
        return routed.cap.secondary
    if routed.route.mode == "canary":
        return canary_side(routed.cap, routed.route.percent, routed.call.field(routed.cap.canary.sticky_by))
    return routed.cap.primary
