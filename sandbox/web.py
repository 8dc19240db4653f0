"""Flask plumbing shared by both sandbox services: fault injection hooks, admin fault endpoints, request ids."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from flask import Blueprint, Flask, Response, jsonify, request
from sqlalchemy import Engine, create_engine

from sandbox.faults import Faults, FaultSpecError, FaultSwitch, Injection, parse_faults

# Builds the body of an injected failure in the service's own dialect: (http status) -> response.
FailureResponder = Callable[[int], Response]


def install_faults(app: Flask, switch: FaultSwitch, failure: FailureResponder) -> None:
    """Make every request pass through `switch` and serve the admin endpoints that change it."""

    @app.before_request
    def _inject() -> Response | None:
        injection, faults = switch.on_request(request.path)
        if injection is Injection.ERROR:
            return failure(faults.error_status)
        if injection is Injection.TIMEOUT:
            # A lost request: hold the connection like a stuck backend, then give up without doing the work.
            switch.hang(faults)
            return failure(504)
        return None

    app.register_blueprint(_admin_blueprint(switch))


def commit_timeout(switch: FaultSwitch, path: str, failure: FailureResponder) -> Response | None:
    """After committed work on `path`, maybe hang and return a 504 that hides the outcome; else None."""
    faults = switch.after_commit(path)
    if faults is None:
        return None
    switch.hang(faults)
    return failure(504)


def echo_request_id(response: Response) -> Response:
    """Copy the caller's X-Request-ID onto the response so both sides of a call log the same id."""
    request_id = request.headers.get("X-Request-ID")
    if request_id:
        response.headers["X-Request-ID"] = request_id
    return response


def _admin_blueprint(switch: FaultSwitch) -> Blueprint:
    bp = Blueprint("faults_admin", __name__)

    @bp.get("/__admin/faults")
    def show() -> Response:
        return jsonify(switch.current().to_json())

    @bp.put("/__admin/faults")
    def put() -> tuple[Response, int]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return jsonify({"error": "body must be a JSON object"}), 400
        try:
            faults = parse_faults(body, switch.defaults)
        except FaultSpecError as exc:
            return jsonify({"error": str(exc)}), 400
        return jsonify(switch.set(faults).to_json()), 200

    @bp.delete("/__admin/faults")
    def reset() -> Response:
        return jsonify(switch.reset().to_json())

    return bp


def sandbox_app(
    name: str,
    database_url: str,
    faults_file: str | Path | None,
    defaults: Faults,
    failure: FailureResponder,
    pool_size: int,
    max_overflow: int,
) -> tuple[Flask, Engine, FaultSwitch]:
    """Return a Flask app with compact ordered JSON, an AUTOCOMMIT engine and the fault switch installed."""
    app = Flask(name)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep each record's field order
    app.json.compact = True  # type: ignore[attr-defined]
    # AUTOCOMMIT: single-statement reads skip BEGIN/ROLLBACK; the stores open real transactions for writes.
    engine = create_engine(
        database_url,
        isolation_level="AUTOCOMMIT",
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=False,
    )
    switch = FaultSwitch(Path(faults_file) if faults_file else None, defaults)
    app.extensions["sandbox.faults"] = switch
    install_faults(app, switch, failure)
    app.after_request(echo_request_id)
    return app, engine, switch


def database_url_from_env(what: str) -> str:
    """Return SANDBOX_DATABASE_URL (read when called, not at import), or raise naming what it must point at."""
    url = os.environ.get("SANDBOX_DATABASE_URL")
    if not url:
        raise RuntimeError(f"SANDBOX_DATABASE_URL is not set; it must be the SQLAlchemy URL of {what}")
    return url
