"""The admin API (`/admin/v1`): the route switchboard over HTTP for admin keys only, audited as the CLI's is.

Reads show every capability's live route and its audit trail. A change names a mode (and a canary percent) with a
reason; `If-Match: "<version>"` makes it a compare-and-set (412 when the route moved on). A change that gives the
cloud side more callers passes the same cutover gate as `strangler routes set`: 409 with the failing criteria while
the capability is NOT READY, unless `"force": true`, which the audit trail records.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict
from typing import Any

from flask import Blueprint, Response, g, request

from core.calls import Outcome
from core.problems import problem
from core.routestore import (
    AuditEntry,
    PostgresRouteStore,
    RouteChangeError,
    RouteState,
    StaleRoute,
    check_change,
    states_by_name,
)
from core.rules import CapabilitySpec
from facade.livetable import LiveRoutes
from facade.portal import to_response
from parallel_run.gate import NotReady, gated_reason

ADMIN_PREFIX = "/admin/"
HISTORY_LIMIT = 200


def route_view(cap: CapabilitySpec, state: RouteState) -> dict[str, Any]:
    """Return one capability's live route as the admin API and page show it."""
    updated_at = state.updated_at.isoformat() if state.updated_at else None
    match = f"{cap.method} {cap.path}"
    return {**asdict(state), "updated_at": updated_at, "match": match, "critical": cap.critical}


def audit_view(entry: AuditEntry) -> dict[str, Any]:
    """Return one audit entry as the admin API and page show it."""
    return {**asdict(entry), "at": entry.at.isoformat()}


def _json(body: dict[str, Any], status: int = 200, version: int | None = None) -> Response:
    response = to_response(Outcome(status=status, body=body))
    if version is not None:
        response.set_etag(str(version))
    return response


def _expected_version() -> int | None:
    """Return the one route version `If-Match` names (None without the header); ValueError for anything else."""
    if "If-Match" not in request.headers:
        return None
    tags = request.if_match.as_set(include_weak=True)
    if request.if_match.star_tag or len(tags) != 1:
        raise ValueError("If-Match names one route version")
    return int(tags.pop())


def make_blueprint(routes: LiveRoutes, store: PostgresRouteStore, modes: Collection[str]) -> Blueprint:
    """Return the admin API's blueprint; the app's request hook admits admin keys only on its paths."""
    bp = Blueprint("admin", __name__, url_prefix="/admin/v1")

    def capability(name: str) -> CapabilitySpec | Outcome:
        rules = routes.snapshot.rules
        if name not in rules.capabilities:
            known = ", ".join(sorted(rules.capabilities))
            return problem(404, "unknown-capability", "Unknown capability", f"{name!r} (known: {known})")
        return rules.capabilities[name]

    def state_of(name: str) -> RouteState:
        # A capability the rules file gained since the last seed has no stored route yet: its file mode stands.
        return states_by_name(store.current(), routes.snapshot.rules)[name]

    @bp.get("/routes")
    def list_routes() -> Response:
        rules = routes.snapshot.rules
        current = states_by_name(store.current(), rules)
        listed = [route_view(cap, current[name]) for name, cap in rules.capabilities.items()]
        return _json({"version": store.version(), "routes": listed})

    @bp.get("/routes/<name>")
    def show_route(name: str) -> Response:
        cap = capability(name)
        if isinstance(cap, Outcome):
            return to_response(cap)
        state = state_of(name)
        history = [audit_view(e) for e in store.history(name, limit=20)]
        return _json({**route_view(cap, state), "history": history}, version=state.version)

    @bp.get("/history")
    def history() -> Response:
        name = request.args.get("capability") or None
        try:
            limit = min(int(request.args.get("limit", "50")), HISTORY_LIMIT)
        except ValueError:
            return to_response(problem(400, "bad-request", "Bad request", "limit must be a whole number"))
        return _json({"history": [audit_view(e) for e in store.history(name, limit=max(limit, 1))]})

    @bp.put("/routes/<name>")
    def set_route(name: str) -> Response:
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("mode"), str):
            return to_response(problem(400, "bad-request", "Bad request", 'send {"mode": ..., "reason": ...}'))
        percent = body.get("percent")
        if percent is not None and (isinstance(percent, bool) or not isinstance(percent, int | float)):
            return to_response(problem(400, "bad-request", "Bad request", "percent must be a number"))
        return change(name, body["mode"], None if percent is None else float(percent), body)

    @bp.post("/routes/<name>/rollback")
    def rollback(name: str) -> Response:
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            return to_response(problem(400, "bad-request", "Bad request", 'send {"reason": ...}'))
        reason = body.get("reason")
        given = isinstance(reason, str) and reason.strip()
        return change(name, "legacy", None, {**body, "reason": f"rollback: {reason}" if given else None})

    def change(name: str, mode: str, percent: float | None, body: dict[str, Any]) -> Response:
        cap = capability(name)
        if isinstance(cap, Outcome):
            return to_response(cap)
        reason, force = body.get("reason"), body.get("force", False)
        if not isinstance(reason, str) or not reason.strip():
            return to_response(problem(400, "bad-request", "Bad request", "a reason is required for every change"))
        if not isinstance(force, bool):
            return to_response(problem(400, "bad-request", "Bad request", "force must be true or false"))
        try:
            expected = _expected_version()
        except ValueError:
            return to_response(problem(400, "bad-request", "Bad request", 'If-Match takes a route version: "12"'))
        before = state_of(name)
        wanted = percent if mode == "canary" and percent is not None else (before.percent if mode == "canary" else 0)
        actor = f"admin:{g.client_id}"
        try:
            check_change(cap, mode, wanted, modes)  # a change that cannot be made is refused before it is judged
            reason = gated_reason(store.engine, cap, (before.mode, before.percent), (mode, wanted), reason, force)
            after = store.set(cap, mode, percent, actor, reason, modes, expect_version=expected)
        except NotReady as exc:
            return to_response(
                problem(409, "not-ready", "Not ready for more cloud traffic", str(exc), failing=exc.failing)
            )
        except StaleRoute as exc:
            return to_response(problem(412, "stale-route", "The route changed", str(exc)))
        except RouteChangeError as exc:
            return to_response(problem(422, "refused-route-change", "Route change refused", str(exc)))
        return _json({**route_view(cap, after), "previous": route_view(cap, before)}, version=after.version)

    return bp
