"""The cutover gate: a route change that gives the cloud side more of a capability's callers needs a READY verdict."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from core.routestore import RouteChangeError
from core.rules import CapabilitySpec
from parallel_run.report.verdict import Verdict, verdict_for

# (engine, capability) -> its readiness verdict; tests may pass their own.
Judge = Callable[[sa.Engine, CapabilitySpec], Verdict]


class NotReady(RouteChangeError):
    """The change gives the cloud side more callers while the capability's parallel-run verdict is NOT READY."""

    def __init__(self, capability: str, failing: list[str]) -> None:
        self.capability, self.failing = capability, failing
        super().__init__(f"{capability} is NOT READY for more cloud traffic: {'; '.join(failing)}")


def cloud_share(cap: CapabilitySpec, mode: str | None, percent: float | None) -> float:
    """Return the share (0-100) of a capability's callers that the secondary (cloud) side answers in this route."""
    if mode == "cloud":
        return 100.0
    if mode == "canary":
        return percent or 0.0
    if mode == "parallel":
        return 100.0 if cap.parallel_primary == cap.secondary else 0.0
    return 0.0  # legacy and events: the primary (or the event applier on it) answers


def gated_reason(
    engine: sa.Engine,
    cap: CapabilitySpec,
    before: tuple[str | None, float | None],
    after: tuple[str, float | None],
    reason: str,
    force: bool,
    judge: Judge = lambda engine, cap: verdict_for(engine, cap),
) -> str:
    """Return the audit reason for this change, or raise NotReady while the capability is NOT READY.

    Only changes that raise the cloud share are judged; `force` lets one through, and the reason then records that
    it was forced and the criteria that failed.
    """
    if cloud_share(cap, *after) <= cloud_share(cap, *before):
        return reason
    verdict = judge(engine, cap)
    if verdict.ready:
        return reason
    if not force:
        raise NotReady(cap.name, list(verdict.failing))
    return f"{reason} [FORCED past NOT READY: {'; '.join(verdict.failing)}]"
