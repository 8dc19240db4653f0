"""The canary guard as a facade background job: watch shadowed capabilities, roll a bad canary back to legacy once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from core.routestore import PostgresRouteStore, StaleRoute
from facade.livetable import LiveRoutes
from facade.metrics import FacadeMetrics
from parallel_run.guard import GuardWindow, trip_reason

log = logging.getLogger("strangler.guard")
ACTOR = "guard"
# (capability, since, seconds) -> the figures of its comparisons recorded since then.
Figures = Callable[[str, datetime, int], GuardWindow]


class CanaryGuard:
    """On each `check()`: refresh match-rate gauges of shadowed capabilities and roll back canaries that trip."""

    def __init__(
        self,
        routes: LiveRoutes,
        route_store: PostgresRouteStore,
        figures: Figures,
        metrics: FacadeMetrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.routes, self.route_store, self.figures, self.metrics, self.clock = (
            routes, route_store, figures, metrics, clock,
        )  # fmt: skip

    def check(self) -> list[str]:
        """Look at every shadowed capability once; return the capabilities this call rolled back."""
        snapshot, now = self.routes.snapshot, self.clock()
        rolled_back = []
        for name, state in snapshot.states.items():
            cap = snapshot.capability(name)
            guarded = state.mode == "canary" and cap.canary.shadow
            if state.mode != "parallel" and not guarded:
                continue
            since = now - timedelta(seconds=cap.guard.window_s)
            if guarded and state.updated_at is not None and state.updated_at > since:
                since = state.updated_at  # only evidence about this canary, not about the one before it
            window = self.figures(name, since, cap.guard.window_s)
            if window.answered:
                self.metrics.match_rate.labels(name).set(1 - window.mismatches / window.answered)
            reason = trip_reason(window, cap.guard) if guarded else None
            if reason is None:
                continue
            try:
                # Compare-and-set on the version this decision saw: of many workers tripping at once, one rolls back.
                self.route_store.set(cap, "legacy", None, ACTOR, reason, expect_version=state.version)
            except StaleRoute:
                continue
            self.metrics.guard_rollbacks.labels(name).inc()
            log.warning("canary rolled back", extra={"capability": name, "reason": reason})
            rolled_back.append(name)
        return rolled_back
