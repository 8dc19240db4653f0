"""Operations endpoints: /healthz (the process lives), /readyz (control plane and upstreams reachable), /metrics."""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify

from connectors.upstream import UpstreamClient
from facade.livetable import LiveRoutes
from facade.metrics import FacadeMetrics


def make_blueprint(
    engine: sa.Engine, clients: Mapping[str, UpstreamClient], routes: LiveRoutes, metrics: FacadeMetrics
) -> Blueprint:
    """Return the blueprint serving the operations endpoints (no authentication: bind them to a private port)."""
    bp = Blueprint("ops", __name__)

    @bp.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @bp.get("/readyz")
    def readyz() -> tuple[Response, int]:
        checks: dict[str, str] = {}
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            checks["control_plane"] = "ok"
        except Exception as exc:
            checks["control_plane"] = f"unreachable: {type(exc).__name__}"
        for name, client in clients.items():
            checks[f"upstream:{name}"] = "ok" if client.probe() else "unreachable"
            checks[f"breaker:{name}"] = client.breaker_state
        if routes.rules_error:
            checks["rules_file"] = f"refused, serving the last good table: {routes.rules_error}"
        ready = all(v == "ok" for k, v in checks.items() if not k.startswith(("breaker:", "rules_file")))
        return jsonify(ready=ready, checks=checks, route_version=routes.snapshot.version), 200 if ready else 503

    @bp.get("/metrics")
    def prometheus() -> Response:
        for name, client in clients.items():
            metrics.set_breaker(name, client.breaker_state)
        return Response(metrics.render(), mimetype="text/plain; version=0.0.4")

    return bp
