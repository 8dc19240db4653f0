"""The cloud-native portal API (`/v1/...`, JSON, RFC 9457 problems) over the cloud store, as a Flask app factory."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from sandbox.cloud.ledger import ledger_summary
from sandbox.cloud.store import CloudStore
from sandbox.cloud.wire import Problem, parse_payment, parse_profile_patch, resource_id
from sandbox.faults import Faults, FaultSwitch
from sandbox.web import commit_timeout, database_url_from_env, sandbox_app

DEFAULT_FAULTS = Faults(paths=("/v1/",))
SHADOW_HEADER = "X-Strangler-Shadow"


def _json(body: dict[str, Any], status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def problem_response(problem: Problem) -> Response:
    """Render a Problem as `application/problem+json`."""
    response = _json(problem.body(), problem.status)
    response.mimetype = "application/problem+json"
    return response


def _failure(status: int) -> Response:
    """Answer an injected fault: nothing was done (or, on a commit timeout, the outcome is hidden)."""
    if status == 504:
        return problem_response(Problem(504, "upstream-timeout", "Gateway timeout", "the request timed out"))
    return problem_response(Problem(status, "service-unavailable", "Service unavailable", "please retry later"))


def _is_shadow() -> bool:
    return request.headers.get(SHADOW_HEADER, "").strip().lower() in ("1", "true")


def _portal_blueprint(store: CloudStore, switch: FaultSwitch) -> Blueprint:
    bp = Blueprint("portal", __name__)

    @bp.get("/v1/accounts/<account_id>/balance")
    def balance(account_id: str) -> Response:
        return _json(store.balance(resource_id(account_id, "account")))

    @bp.post("/v1/payments")
    def submit_payment() -> Response:
        dry_run = _is_shadow()
        try:
            instruction = parse_payment(request.get_json(silent=True))
            status, body, replayed = store.submit_payment(instruction, dry_run=dry_run)
        except Problem as problem:
            if dry_run:
                problem.extra["dry_run"] = True
            raise
        if dry_run:
            body["dry_run"] = True
        # The work is committed by now; a commit timeout hides its outcome from the caller.
        response = commit_timeout(switch, request.path, _failure) or _json(body, status)
        if status >= 400 and response.status_code == status:
            response.mimetype = "application/problem+json"
        if replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return response

    @bp.get("/v1/payments/<payment_id>")
    def get_payment(payment_id: str) -> Response:
        return _json(store.payment(payment_id))

    @bp.get("/v1/customers/<customer_id>/profile")
    def get_profile(customer_id: str) -> Response:
        return _json(store.profile(resource_id(customer_id, "customer")))

    @bp.patch("/v1/customers/<customer_id>/profile")
    def patch_profile(customer_id: str) -> Response:
        number = resource_id(customer_id, "customer")
        return _json(store.update_profile(number, parse_profile_patch(request.get_json(silent=True))))

    return bp


def _ops_blueprint(store: CloudStore) -> Blueprint:
    bp = Blueprint("ops", __name__)

    @bp.get("/healthz")
    def healthz() -> Response:
        return _json({"status": "ok"})

    @bp.get("/__admin/ledger")
    def ledger() -> Response:
        with store.engine.connect() as conn:
            return _json(ledger_summary(conn))

    return bp


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(Problem)
    def problem(exc: Problem) -> Response:
        return problem_response(exc)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        slug = (exc.name or "error").lower().replace(" ", "-")
        return problem_response(Problem(status, slug, exc.name or "Error", exc.description or ""))

    @app.errorhandler(Exception)
    def crash(exc: Exception) -> Response:
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(Problem(500, "internal-error", "Internal error", "an unexpected error occurred"))


def create_app(
    database_url: str,
    faults_file: str | Path | None = None,
    *,
    pool_size: int = 20,
    max_overflow: int = 20,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Flask:
    """Build the cloud portal API on the `cloud` schema at `database_url`; faults are shared through `faults_file`."""
    app, engine, switch = sandbox_app(
        __name__, database_url, faults_file, DEFAULT_FAULTS, _failure, pool_size, max_overflow
    )
    store = CloudStore(engine, clock=clock)
    app.extensions["sandbox.cloud"] = store
    app.register_blueprint(_portal_blueprint(store, switch))
    app.register_blueprint(_ops_blueprint(store))
    _install_error_handlers(app)
    return app


def create_app_from_env() -> Flask:
    """Build the app from SANDBOX_DATABASE_URL and optional SANDBOX_FAULTS_FILE (read now, not at import)."""
    database_url = database_url_from_env("the cloud store")
    return create_app(database_url, os.environ.get("SANDBOX_FAULTS_FILE") or None)
