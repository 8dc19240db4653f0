"""The admin web page (`/admin/`): routes, readiness, breakers and recent changes, read-only, for admin keys only."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from flask import Blueprint, render_template

from core.routestore import PostgresRouteStore, states_by_name
from facade.admin import audit_view, route_view
from facade.livetable import LiveRoutes
from parallel_run.report.verdict import verdict_for


def make_page(routes: LiveRoutes, store: PostgresRouteStore, breakers: Callable[[], Mapping[str, str]]) -> Blueprint:
    """Return the blueprint of the read-only admin page; changes go through the admin API or the CLI."""
    bp = Blueprint("admin_page", __name__, template_folder="templates")

    @bp.get("/admin/")
    def page() -> str:
        rules = routes.snapshot.rules
        current = states_by_name(store.current(), rules)
        rows = []
        for name, cap in rules.capabilities.items():
            verdict = verdict_for(store.engine, cap)
            rows.append({**route_view(cap, current[name]), "ready": verdict.ready, "verdict": verdict.describe()})
        return render_template(
            "admin.html", version=store.version(), routes=rows, breakers=sorted(breakers().items()),
            history=[audit_view(e) for e in store.history(limit=20)],
        )  # fmt: skip

    return bp
