"""The portal API blueprint: every /v1 call is matched to a capability and answered by its route's mode.

Each capability of the rules the app started with is a Flask rule of its own, so Flask's one URL match also names the
capability. Once the rules file has been reloaded, that match may be stale, and the live table's matcher decides; a
path no capability rule took reaches the catch-all rule, which asks the live table too (404 or 405 if nothing serves
it).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, g, request
from prometheus_client.metrics import MetricWrapperBase

from connectors.adapters import AdapterInputError
from core.calls import Call, Outcome
from core.problems import problem
from core.routestore import RouteState
from core.rules import CapabilitySpec, RuleSet
from facade.dispatch import InDoubt
from facade.events import request_status
from facade.idempotency import PostgresIdempotencyStore
from facade.indoubt import InDoubtResolver
from facade.livetable import LiveRoutes
from facade.logs import AccessLog
from facade.metrics import FacadeMetrics
from facade.modes import Mode, Routed, upstream_of
from facade.routing import Match, NoRoute

MAX_KEY_LENGTH = 200
PORTAL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
MAX_CACHED_CHILDREN = 4096  # label combinations are bounded by routes x statuses; a safety net all the same


class LabelledChildren:
    """The children of one labelled metric by label values, looked up once: ``labels()`` on every request costs."""

    def __init__(self, metric: MetricWrapperBase) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._metric.labels(*values)
            if len(self._children) < MAX_CACHED_CHILDREN:
                self._children[values] = child
        return child


@dataclass(frozen=True)
class Answered:
    """What the metrics and the access log say of one answered portal request."""

    request_id: str
    client_id: str
    method: str
    path: str
    capability: str
    mode: str
    seconds: float


@dataclass
class Portal:
    """The collaborators one portal request needs, built once by the app factory."""

    routes: LiveRoutes
    modes: dict[str, Mode]
    idempotency: PostgresIdempotencyStore
    in_doubt: InDoubtResolver
    metrics: FacadeMetrics
    engine: sa.Engine
    request_counts: LabelledChildren = field(init=False)
    request_seconds: LabelledChildren = field(init=False)
    access_log: AccessLog = field(init=False)

    def __post_init__(self) -> None:
        self.request_counts = LabelledChildren(self.metrics.requests)
        self.request_seconds = LabelledChildren(self.metrics.latency)
        self.access_log = AccessLog()

    def read(self, cap: CapabilitySpec, route: RouteState, call: Call) -> Outcome:
        """Answer a matched call that writes nothing (no body, no idempotency key) by its route's mode."""
        return self._run(Routed(call, cap, route), None)

    def record(self, outcome: Outcome, answered: Answered) -> str:
        """Count and log one answered portal request; return who answered it ("facade" when no upstream did)."""
        upstream = outcome.upstream or "facade"
        self.request_counts(answered.capability, answered.mode, upstream, str(outcome.status)).inc()
        self.request_seconds(answered.capability, answered.mode, upstream).observe(answered.seconds)
        self.access_log.write(
            {
                "request_id": answered.request_id, "client": answered.client_id, "method": answered.method,
                "path": answered.path, "capability": answered.capability, "mode": answered.mode,
                "upstream": upstream, "status": outcome.status, "ms": round(answered.seconds * 1000, 2),
            }
        )  # fmt: skip
        return upstream

    def answer(self, matched: Match | None = None, matched_in: RuleSet | None = None) -> tuple[Outcome, str, str]:
        """Answer the current request; return the outcome, its capability and its mode ("-" when none matched).

        ``matched`` is Flask's match of a capability rule made from ``matched_in``; it is used only while the live
        table still holds those very rules, else the live table's matcher decides.
        """
        snapshot = self.routes.snapshot
        req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup, not one per use
        method, path = req.method, req.path
        if matched is not None and snapshot.rules is matched_in:
            match = matched
        else:
            try:
                match = snapshot.matcher.match(method, path)
            except NoRoute as exc:
                if exc.allowed:
                    return problem(
                        405, "method-not-allowed", "Method not allowed", f"{method} is not served here",
                        headers={"Allow": ", ".join(exc.allowed)},
                    ), "-", "-"  # fmt: skip
                return problem(404, "no-such-route", "Not found", f"no capability serves {path}"), "-", "-"
        cap = snapshot.capability(match.capability)
        route = snapshot.states[cap.name]
        ids = g._get_current_object()
        ids.capability, ids.mode = cap.name, route.mode  # for whoever handles this request after us (error handlers)
        return self._matched(req, ids, cap, route, match.params), cap.name, route.mode

    def _matched(
        self, req: Any, ids: Any, cap: CapabilitySpec, route: RouteState, params: Mapping[str, str]
    ) -> Outcome:
        body = req.get_data(cache=False)
        if not body and cap.is_write:
            return problem(400, "malformed-json", "Missing body", "this request needs a JSON body")
        call = Call(
            capability=cap.name, method=req.method, path=req.path, path_params=params,
            query=req.args.to_dict(), body=body, request_id=ids.request_id, client_id=ids.client_id,
            headers={"content-type": req.content_type or "application/json"},
        )  # fmt: skip
        try:
            call.json  # noqa: B018  # parsed once here; adapters and modes reuse the cached value
        except ValueError as exc:
            return problem(400, "malformed-json", "Malformed JSON", f"the body is not valid JSON: {exc}")
        routed = Routed(call, cap, route)
        if cap.is_write and cap.idempotency != "none":
            return self._idempotent(routed)
        return self._run(routed, None)

    def _idempotent(self, routed: Routed) -> Outcome:
        cap, call = routed.cap, routed.call
        key = request.headers.get("Idempotency-Key")
        if key is None:
            if cap.idempotency == "required":
                return problem(400, "idempotency-key-required", "Idempotency-Key required", f"{cap.name} needs one")
            return self._run(replace(routed, call=replace(call, resource_id=new_resource_id(cap))), None)
        if not 1 <= len(key) <= MAX_KEY_LENGTH:
            return problem(400, "invalid-idempotency-key", "Invalid Idempotency-Key", "1 to 200 characters")
        resolvable = cap.in_doubt == "lookup"
        decision = self.idempotency.begin(call, key, new_resource_id(cap), resolvable)
        self.metrics.idempotency.labels(cap.name, decision.kind).inc()
        if decision.kind == "replay":
            assert decision.outcome is not None
            return decision.outcome
        if decision.kind == "mismatch":
            return problem(
                422, "idempotency-key-reused", "Idempotency-Key reused",
                "this key was used for a different request; use a new key for a new request",
            )  # fmt: skip
        if decision.kind == "conflict":
            return problem(
                409, "request-in-progress", "Request in progress", "a request with this key is still running",
                headers={"Retry-After": "1"},
            )  # fmt: skip
        routed = replace(routed, call=replace(call, resource_id=decision.resource_id))
        if decision.kind == "in_doubt":
            assert decision.resource_id is not None
            # Also covers a claim whose worker died mid-call: recorded once, resolved like any other.
            return self.in_doubt.open(routed.cap, routed.call, upstream_of(routed), key)
        return self._run(routed, key)

    def _run(self, routed: Routed, key: str | None) -> Outcome:
        cap = routed.cap
        try:
            outcome = self.modes[routed.route.mode].handle(routed)
        except AdapterInputError as exc:
            outcome = problem(400, "invalid-request", "Invalid request", exc.detail, field=exc.field)
            state = "done"
        except InDoubt as exc:
            if cap.in_doubt == "lookup" and routed.call.resource_id:
                outcome = self.in_doubt.open(cap, routed.call, exc.upstream, key)
                return outcome  # the resolver recorded the outcome under the key (or left it in doubt)
            outcome = problem(
                504, "outcome-unknown", "Outcome unknown",
                "the upstream did not confirm this update; retry with the same Idempotency-Key",
            )  # fmt: skip
            state = "retryable"
        else:
            state = "retryable" if outcome.status >= 500 else "done"
        if key is not None:
            self.idempotency.finish(routed.call.client_id, key, outcome, state)
        if outcome.status == 404 and not cap.is_write and len(routed.call.path_params) == 1:
            # A created resource still in doubt is not 'not found': say what the facade knows.
            (resource_id,) = routed.call.path_params.values()
            outcome = self.in_doubt.status(resource_id) or outcome
        return outcome


def new_resource_id(cap: CapabilitySpec) -> str:
    """Return a fresh reference for a create: the upstream dedups by it and in-doubt lookups find it by it."""
    return f"{cap.name.split('.')[0][:3]}_{uuid.uuid4().hex}"


def outcome_headers(outcome: Outcome, upstream: str | None = None) -> dict[str, str]:
    """Return the headers of an outcome's response: JSON unless it says otherwise, tagged with who answered if given."""
    headers = dict(outcome.headers)
    headers.setdefault("Content-Type", "application/json")
    if upstream is not None:
        headers["X-Strangler-Upstream"] = upstream
    return headers


def to_response(outcome: Outcome, upstream: str | None = None) -> Response:
    """Return the HTTP response for an outcome (see `outcome_headers`)."""
    return Response(outcome.payload(), status=outcome.status, headers=outcome_headers(outcome, upstream))


def make_blueprint(portal: Portal) -> Blueprint:
    """Return the blueprint that sends every /v1 path through the portal: one rule per capability, then a catch-all."""
    bp = Blueprint("portal", __name__)

    @bp.get("/v1/requests/<request_id>")
    def update_status(request_id: str) -> Response:
        outcome = request_status(portal.engine, request_id, g.client_id)
        return to_response(outcome, "facade")

    def respond(matched: Match | None, matched_in: RuleSet | None) -> Response:
        started = time.perf_counter()
        outcome, capability, mode = portal.answer(matched, matched_in)
        elapsed = time.perf_counter() - started
        req, ids = request._get_current_object(), g._get_current_object()  # type: ignore[attr-defined]
        answered = Answered(ids.request_id, ids.client_id, req.method, req.path, capability, mode, elapsed)
        return to_response(outcome, portal.record(outcome, answered))

    def capability_view(name: str, rules: RuleSet) -> Callable[..., Response]:
        def capability_call(**params: Any) -> Response:
            return respond(Match(name, {k: str(v) for k, v in params.items()}), rules)

        return capability_call

    # Fixed at start-up: after a reload of the rules file, `Portal.answer` ignores these and asks the live table.
    # Flask's strict slash handling applies to them, so only canonical paths take this way; any other path (a
    # trailing or doubled slash) reaches the catch-all and is answered exactly as before these rules existed.
    started_with = portal.routes.snapshot.rules
    for number, cap in enumerate(started_with.capabilities.values()):
        view = capability_view(cap.name, started_with)
        bp.add_url_rule(cap.path, f"capability_{number}", view, methods=[cap.method])

    @bp.route("/v1/", defaults={"rest": ""}, methods=PORTAL_METHODS)
    @bp.route("/v1/<path:rest>", methods=PORTAL_METHODS)
    def portal_call(rest: str) -> Response:
        return respond(None, None)

    return bp
