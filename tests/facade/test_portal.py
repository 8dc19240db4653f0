"""The portal's routing: Flask's one match names the capability, and a reloaded rules file is always what decides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask, g

from core.calls import Outcome
from core.routestore import states_by_name
from core.rules import parse_rules
from facade import portal
from facade.livetable import RouteSnapshot
from facade.metrics import FacadeMetrics
from facade.modes import Mode, Routed
from facade.routing import CapabilityMatcher
from tests.builders import SHIPPED_RULES, shipped_rules, shipped_rules_text


class Answering(Mode):
    """A mode that records what it was asked and answers 200 from "legacy"."""

    def __init__(self) -> None:
        self.routed: list[Routed] = []

    def handle(self, routed: Routed) -> Outcome:
        self.routed.append(routed)
        return Outcome(200, {"capability": routed.cap.name, **routed.call.path_params}, upstream="legacy")


class CountingMatcher(CapabilityMatcher):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.calls = 0

    def match(self, method: str, path: str) -> Any:
        self.calls += 1
        return super().match(method, path)


@dataclass
class Routes:
    """Stands in for LiveRoutes: just the current snapshot."""

    snapshot: RouteSnapshot
    seen: list[str] = field(default_factory=list)


def snapshot_of(text: str) -> RouteSnapshot:
    rules = parse_rules(text, str(SHIPPED_RULES))
    return RouteSnapshot(rules, CountingMatcher(rules.capabilities), states_by_name({}, rules), 1)


@pytest.fixture
def mode() -> Answering:
    return Answering()


@pytest.fixture
def setup(mode: Answering) -> tuple[Flask, Routes]:
    routes = Routes(snapshot_of(shipped_rules_text()))
    app = Flask("test-portal")
    modes: dict[str, Mode] = {name: mode for name in ("legacy", "cloud", "canary", "events", "parallel")}
    the_portal = portal.Portal(routes, modes, None, None, FacadeMetrics(), None)  # type: ignore[arg-type]
    app.register_blueprint(portal.make_blueprint(the_portal))

    @app.before_request
    def identify() -> None:
        g.request_id, g.client_id = "req-1", "portal"

    return app, routes


def test_a_capability_path_is_matched_once_by_flask(setup: tuple[Flask, Routes], mode: Answering) -> None:
    app, routes = setup
    answer = app.test_client().get("/v1/accounts/42/balance")

    assert answer.status_code == 200
    assert answer.json == {"capability": "accounts.balance", "account_id": "42"}
    assert answer.headers["X-Strangler-Upstream"] == "legacy"
    assert routes.snapshot.matcher.calls == 0  # type: ignore[attr-defined]
    assert mode.routed[0].call.path_params == {"account_id": "42"}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/v1/accounts/42/balance/", 200), ("DELETE", "/v1/payments", 405), ("GET", "/v1/loans/1", 404)],
)
def test_other_paths_are_asked_of_the_live_table(
    setup: tuple[Flask, Routes], method: str, path: str, status: int
) -> None:
    app, routes = setup
    answer = app.test_client().open(path, method=method)

    assert answer.status_code == status
    assert routes.snapshot.matcher.calls == 1  # type: ignore[attr-defined]


def test_after_a_reload_the_new_table_decides_not_the_rules_flask_started_with(
    setup: tuple[Flask, Routes], mode: Answering
) -> None:
    app, routes = setup
    assert shipped_rules().capabilities["accounts.balance"].path == "/v1/accounts/<account_id>/balance"
    moved = shipped_rules_text().replace("/v1/accounts/{account_id}/balance", "/v1/accounts/{account_id}/saldo")
    routes.snapshot = snapshot_of(moved)
    assert routes.snapshot.rules.capabilities["accounts.balance"].path == "/v1/accounts/<account_id>/saldo"
    client = app.test_client()

    gone = client.get("/v1/accounts/42/balance")  # still a Flask rule, but no longer a capability
    moved_here = client.get("/v1/accounts/42/saldo")

    assert gone.status_code == 404
    assert moved_here.status_code == 200
    assert moved_here.json == {"capability": "accounts.balance", "account_id": "42"}
    assert [r.call.path for r in mode.routed] == ["/v1/accounts/42/saldo"]
