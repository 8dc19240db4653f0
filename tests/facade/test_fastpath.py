"""Capability reads skip Flask and are answered exactly as Flask answers them; everything else still goes to Flask."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import Client

from core.calls import Outcome
from core.routestore import states_by_name
from core.rules import parse_rules
from core.settings import Settings
from facade import portal
from facade.app import install_request_hooks
from facade.fastpath import PortalReads
from facade.livetable import RouteSnapshot
from facade.metrics import FacadeMetrics
from facade.modes import Mode, Routed
from facade.routing import CapabilityMatcher
from tests.builders import SHIPPED_RULES, shipped_rules_text

KEY = "k" * 24
AUTH = {"Authorization": f"Bearer {KEY}"}
BALANCE = "/v1/accounts/42/balance"


class Recording(Mode):
    """Answers 200 from "legacy" with the capability and path parameters, or raises `failure` when one is set."""

    def __init__(self) -> None:
        self.routed: list[Routed] = []
        self.failure: Exception | None = None

    def handle(self, routed: Routed) -> Outcome:
        self.routed.append(routed)
        if self.failure is not None:
            raise self.failure
        return Outcome(200, {"capability": routed.cap.name, **routed.call.path_params}, upstream="legacy")


@dataclass
class Routes:
    snapshot: RouteSnapshot


@dataclass
class World:
    app: Flask
    mode: Recording
    metrics: FacadeMetrics
    flask_hits: list[str] = field(default_factory=list)

    def fast(self, path: str, **kwargs: Any) -> Any:
        """Call the app as gunicorn does: through the read layer in front of Flask."""
        return self.app.test_client().open(path, **kwargs)

    def flask_only(self, path: str, **kwargs: Any) -> Any:
        reads = self.app.wsgi_app
        assert isinstance(reads, PortalReads)
        return Client(reads.inner).open(path, **kwargs)


@pytest.fixture
def world() -> World:
    rules = parse_rules(shipped_rules_text(), str(SHIPPED_RULES))
    routes = Routes(RouteSnapshot(rules, CapabilityMatcher(rules.capabilities), states_by_name({}, rules), 1))
    mode, metrics = Recording(), FacadeMetrics()
    modes: dict[str, Mode] = {name: mode for name in ("legacy", "cloud", "canary", "events", "parallel")}
    the_portal = portal.Portal(routes, modes, None, None, metrics, None)  # type: ignore[arg-type]
    app = Flask("test-fastpath")
    world = World(app, mode, metrics)

    @app.before_request  # first of the hooks, so it sees requests the caller check then refuses
    def seen() -> None:
        world.flask_hits.append("hit")

    app.register_blueprint(portal.make_blueprint(the_portal))
    install_request_hooks(app, Settings(database_url="unused", api_keys={KEY: "portal-web"}))

    app.wsgi_app = PortalReads(app.wsgi_app, the_portal, {KEY: "portal-web"})  # type: ignore[method-assign]
    return world


def test_a_capability_read_skips_flask_and_is_answered_as_flask_answers_it(world: World) -> None:
    headers = {**AUTH, "X-Request-ID": "req-7"}
    fast = world.fast(BALANCE + "?as_of=20260101&as_of=20270101&empty=", headers=headers)
    assert world.flask_hits == []  # Flask never saw it
    slow = world.flask_only(BALANCE + "?as_of=20260101&as_of=20270101&empty=", headers=headers)
    assert world.flask_hits == ["hit"]

    assert fast.status_code == slow.status_code == 200
    assert fast.get_data() == slow.get_data() and fast.json == {"capability": "accounts.balance", "account_id": "42"}
    for name in ("Content-Type", "Content-Length", "X-Strangler-Upstream", "X-Request-ID"):
        assert fast.headers[name] == slow.headers[name], name
    assert fast.headers["X-Request-ID"] == "req-7"
    fast_call, slow_call = (r.call for r in world.mode.routed)
    assert fast_call == slow_call
    assert fast_call.client_id == "portal-web" and fast_call.query == {"as_of": "20260101", "empty": ""}


def test_a_read_without_a_valid_request_id_gets_a_fresh_one(world: World) -> None:
    answer = world.fast(BALANCE, headers={**AUTH, "X-Request-ID": "not valid!"})
    assert answer.status_code == 200
    assert answer.headers["X-Request-ID"] != "not valid!" and len(answer.headers["X-Request-ID"]) == 32
    assert world.mode.routed[0].call.request_id == answer.headers["X-Request-ID"]


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [
        ("POST", "/v1/payments", AUTH, b"{}", None),  # a write
        ("HEAD", BALANCE, AUTH, None, 200),
        ("GET", BALANCE, {}, None, 401),  # no key: Flask says why
        ("GET", BALANCE, {"Authorization": "Bearer wrong-key-wrong-key"}, None, 401),
        ("GET", BALANCE, AUTH, b'{"a": 1}', 200),  # a body: Flask reads and limits it
        ("GET", "/v1/loans/1", AUTH, None, 404),
        ("GET", "/v1/requests/abc", AUTH, None, None),  # the facade's own status route (no database here)
        ("GET", "/v1/accounts/%C3%A9/balance", AUTH, None, 200),  # not ASCII: Flask decodes it
    ],
)
def test_requests_it_does_not_recognise_go_to_flask(
    world: World, method: str, path: str, headers: dict[str, str], body: bytes | None, status: int | None
) -> None:
    answer = world.fast(path, method=method, headers=headers, data=body)
    assert world.flask_hits == ["hit"]
    if status is not None:
        assert answer.status_code == status


def test_an_unexpected_error_is_a_problem_with_the_request_id_and_is_logged(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.mode.failure = RuntimeError("boom")
    with caplog.at_level(logging.ERROR, logger="strangler.facade"):
        answer = world.fast(BALANCE, headers={**AUTH, "X-Request-ID": "req-9"})
    assert answer.status_code == 500 and answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json["detail"] == "request id req-9" and answer.headers["X-Request-ID"] == "req-9"
    assert any(r.getMessage() == "unhandled error" and r.exc_info for r in caplog.records)
    assert world.flask_hits == []


def test_each_read_is_counted_and_logged_like_any_portal_request(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="strangler.access"):
        world.fast(BALANCE, headers={**AUTH, "X-Request-ID": "req-11"})
    labels = {"capability": "accounts.balance", "mode": "legacy", "upstream": "legacy", "status": "200"}
    assert world.metrics.registry.get_sample_value("strangler_requests_total", labels) == 1
    [line] = [r for r in caplog.records if r.name == "strangler.access"]
    assert (line.request_id, line.client, line.capability, line.status) == (  # type: ignore[attr-defined]
        "req-11", "portal-web", "accounts.balance", 200,
    )  # fmt: skip
