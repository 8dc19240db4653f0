"""The legacy core-banking HTTP API (old-style `/CBS/...` functions with RC return codes) as a Flask app factory."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from sandbox.faults import Faults, FaultSwitch
from sandbox.legacy.bank import LegacyBank
from sandbox.legacy.ledger import ledger_summary
from sandbox.legacy.wire import (
    MAX_REF_LEN,
    RC_FORMAT_ERROR,
    RC_SYSTEM_MALFUNCTION,
    RC_TIMEOUT,
    FormatError,
    Refusal,
    number10,
    parse_payment,
    parse_profile_update,
    refusal_body,
)
from sandbox.web import commit_timeout, database_url_from_env, sandbox_app

DEFAULT_FAULTS = Faults(paths=("/CBS/",))


def _answer(body: dict[str, Any], status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def _failure(status: int) -> Response:
    """Answer an injected fault the way the legacy gateway does: no work done, RC 96 (or RC 91 on a 504)."""
    return _answer(refusal_body(RC_TIMEOUT if status == 504 else RC_SYSTEM_MALFUNCTION), status)


def _query_refno() -> str:
    refno = request.args.get("REFNO", "")
    if not 0 < len(refno) <= MAX_REF_LEN:
        raise FormatError(f"REFNO MUST BE 1-{MAX_REF_LEN} CHARACTERS")
    return refno


def _cbs_blueprint(bank: LegacyBank, switch: FaultSwitch) -> Blueprint:
    bp = Blueprint("cbs", __name__)

    @bp.get("/CBS/ACCT/BAL")
    def balance() -> Response:
        return _answer(bank.balance(number10(request.args.get("ACCTNO"), "ACCTNO")))

    @bp.post("/CBS/PAYMT")
    def payment() -> Response:
        # Legacy clients often omit the content type: parse the body as JSON regardless.
        order = parse_payment(request.get_json(force=True, silent=True))
        try:
            body = bank.post_payment(order)
        except Refusal as refusal:
            body = refusal.body()
        # The work is committed by now; a commit timeout hides its outcome from the caller.
        return commit_timeout(switch, request.path, _failure) or _answer(body)

    @bp.get("/CBS/PAYMT/INQ")
    def payment_inquiry() -> Response:
        return _answer(bank.payment_inquiry(_query_refno()))

    @bp.get("/CBS/CUST/INQ")
    def customer_inquiry() -> Response:
        return _answer(bank.customer_inquiry(number10(request.args.get("CUSTNO"), "CUSTNO")))

    @bp.post("/CBS/CUST/PROFUPD")
    def profile_update() -> Response:
        return _answer(bank.update_profile(parse_profile_update(request.get_json(force=True, silent=True))))

    return bp


def _ops_blueprint(bank: LegacyBank) -> Blueprint:
    bp = Blueprint("ops", __name__)

    @bp.get("/healthz")
    def healthz() -> Response:
        return _answer({"status": "ok"})

    @bp.get("/__admin/ledger")
    def ledger() -> Response:
        with bank.engine.connect() as conn:
            return _answer(ledger_summary(conn))

    return bp


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(FormatError)
    def format_error(exc: FormatError) -> Response:
        return _answer(exc.body(), 400)

    @app.errorhandler(Refusal)
    def refusal(exc: Refusal) -> Response:
        return _answer(exc.body(), 200)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status >= 500:
            return _answer(refusal_body(RC_SYSTEM_MALFUNCTION), status)
        return _answer({"RC": RC_FORMAT_ERROR, "RCDESC": f"FORMAT ERROR {(exc.name or '').upper()}"}, status)

    @app.errorhandler(Exception)
    def crash(exc: Exception) -> Response:
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return _answer(refusal_body(RC_SYSTEM_MALFUNCTION), 500)


def create_app(
    database_url: str,
    faults_file: str | Path | None = None,
    *,
    pool_size: int = 20,
    max_overflow: int = 20,
    clock: Callable[[], datetime] = datetime.now,
) -> Flask:
    """Build the legacy API on the `cbs` schema at `database_url`; faults are shared through `faults_file`."""
    app, engine, switch = sandbox_app(
        __name__, database_url, faults_file, DEFAULT_FAULTS, _failure, pool_size, max_overflow
    )
    bank = LegacyBank(engine, clock=clock)
    app.extensions["sandbox.legacy"] = bank
    app.register_blueprint(_cbs_blueprint(bank, switch))
    app.register_blueprint(_ops_blueprint(bank))
    _install_error_handlers(app)
    return app


def create_app_from_env() -> Flask:
    """Build the app from SANDBOX_DATABASE_URL and optional SANDBOX_FAULTS_FILE (read now, not at import)."""
    database_url = database_url_from_env("the legacy database")
    return create_app(database_url, os.environ.get("SANDBOX_FAULTS_FILE") or None)
