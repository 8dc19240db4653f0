"""The portal API blueprint: every /v1 call is matched to a capability and answered by its route's mode."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, replace

import sqlalchemy as sa
from flask import Blueprint, Response, g, request

from connectors.adapters import AdapterInputError
from core.calls import Call, Outcome
from core.problems import problem
from core.rules import CapabilitySpec
from facade.dispatch import InDoubt
from facade.events import request_status
from facade.idempotency import PostgresIdempotencyStore
from facade.indoubt import InDoubtResolver
from facade.livetable import LiveRoutes
from facade.metrics import FacadeMetrics
from facade.modes import Mode, Routed, upstream_of
from facade.routing import NoRoute

log = logging.getLogger("strangler.access")
MAX_KEY_LENGTH = 200


@dataclass
class Portal:
    """The collaborators one portal request needs, built once by the app factory."""

    routes: LiveRoutes
    modes: dict[str, Mode]
    idempotency: PostgresIdempotencyStore
    in_doubt: InDoubtResolver
    metrics: FacadeMetrics
    engine: sa.Engine

    def answer(self) -> Outcome:
        snapshot = self.routes.snapshot
        try:
            match = snapshot.matcher.match(request.method, request.path)
        except NoRoute as exc:
            if exc.allowed:
                return problem(
                    405, "method-not-allowed", "Method not allowed", f"{request.method} is not served here",
                    headers={"Allow": ", ".join(exc.allowed)},
                )  # fmt: skip
            return problem(404, "no-such-route", "Not found", f"no capability serves {request.path}")
        cap = snapshot.capability(match.capability)
        g.capability, g.mode = cap.name, snapshot.states[cap.name].mode
        body = request.get_data(cache=False)
        if not body and cap.is_write:
            return problem(400, "malformed-json", "Missing body", "this request needs a JSON body")
        call = Call(
            capability=cap.name, method=request.method, path=request.path, path_params=match.params,
            query=request.args.to_dict(), body=body, request_id=g.request_id, client_id=g.client_id,
            headers={"content-type": request.content_type or "application/json"},
        )  # fmt: skip
        try:
            call.json  # noqa: B018  # parsed once here; adapters and modes reuse the cached value
        except ValueError as exc:
            return problem(400, "malformed-json", "Malformed JSON", f"the body is not valid JSON: {exc}")
        routed = Routed(call, cap, snapshot.states[cap.name])
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


def to_response(outcome: Outcome) -> Response:
    headers = dict(outcome.headers)
    headers.setdefault("Content-Type", "application/json")
    return Response(outcome.payload(), status=outcome.status, headers=headers)


def make_blueprint(portal: Portal) -> Blueprint:
    """Return the blueprint that sends every /v1 path through the portal."""
    bp = Blueprint("portal", __name__)

    @bp.get("/v1/requests/<request_id>")
    def update_status(request_id: str) -> Response:
        outcome = request_status(portal.engine, request_id, g.client_id)
        response = to_response(outcome)
        response.headers["X-Strangler-Upstream"] = "facade"
        return response

    @bp.route("/v1/", defaults={"rest": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    @bp.route("/v1/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def portal_call(rest: str) -> Response:
        started = time.perf_counter()
        outcome = portal.answer()
        capability, mode = g.get("capability", "-"), g.get("mode", "-")
        elapsed = time.perf_counter() - started
        upstream = outcome.upstream or "facade"
        portal.metrics.requests.labels(capability, mode, upstream, str(outcome.status)).inc()
        portal.metrics.latency.labels(capability, mode, upstream).observe(elapsed)
        log.info(
            "request",
            extra={
                "request_id": g.request_id, "client": g.client_id, "method": request.method, "path": request.path,
                "capability": capability, "mode": mode, "upstream": upstream, "status": outcome.status,
                "ms": round(elapsed * 1000, 2),
            },
        )  # fmt: skip
        response = to_response(outcome)
        response.headers["X-Strangler-Upstream"] = upstream
        return response

    return bp
