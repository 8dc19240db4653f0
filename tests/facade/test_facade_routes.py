"""The facade under real gunicorn in front of the real sandbox: modes, toggles, errors and the breaker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from core.procs import wait_until
from facade.modes import canary_side
from tests.stackclient import FacadeClient

BALANCE = "/v1/accounts/{}/balance"


def test_legacy_mode_answers_in_the_portal_shape_and_propagates_the_request_id(facade: FacadeClient) -> None:
    response = facade.request("GET", BALANCE.format(1), headers={"X-Request-ID": "trace-abc-123"})
    assert response.status_code == 200
    assert response.headers["X-Strangler-Upstream"] == "legacy"
    assert response.headers["X-Request-ID"] == "trace-abc-123"
    body = response.json()
    assert body["account_id"] == "1" and body["currency"] == "EUR"
    assert body["balance"].count(".") == 1 and len(body["balance"].split(".")[1]) == 2


def test_a_generated_request_id_is_returned_when_none_is_sent(facade: FacadeClient) -> None:
    assert len(facade.request("GET", BALANCE.format(1)).headers["X-Request-ID"]) >= 16


def test_cloud_mode_and_back_is_followed_by_every_worker(facade: FacadeClient) -> None:
    facade.set_route("accounts.balance", "cloud")
    facade.await_upstream(BALANCE.format(77), "cloud", timeout=3)
    legacy_answer = requests.get(
        facade.stack.urls["legacy"] + "/CBS/ACCT/BAL", params={"ACCTNO": "0000000077"}, timeout=5
    ).json()
    cloud_answer = facade.request("GET", BALANCE.format(77)).json()
    assert cloud_answer["balance"] == f"{legacy_answer['CURBAL'] // 100}.{legacy_answer['CURBAL'] % 100:02d}"
    facade.set_route("accounts.balance", "legacy")
    facade.await_upstream(BALANCE.format(77), "legacy", timeout=3)


def test_canary_is_sticky_per_account_and_matches_the_placement_rule(facade: FacadeClient) -> None:
    facade.set_route("accounts.balance", "canary", 40)
    cap = facade.rules.capabilities["accounts.balance"]
    sides = {}
    for account in range(1, 41):
        seen = {facade.request("GET", BALANCE.format(account)).headers["X-Strangler-Upstream"] for _ in range(3)}
        assert len(seen) == 1, f"account {account} flipped between {seen}"
        sides[str(account)] = seen.pop()
    assert sides == {a: canary_side(cap, 40, a) for a in sides}
    assert set(sides.values()) == {"legacy", "cloud"}


def test_unknown_route_wrong_method_and_no_credentials_get_problem_details(facade: FacadeClient) -> None:
    unknown = facade.request("GET", "/v1/loans/1")
    assert unknown.status_code == 404 and unknown.headers["Content-Type"] == "application/problem+json"
    assert unknown.json()["type"].endswith("/no-such-route")
    wrong = facade.request("DELETE", "/v1/payments")
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST"
    outside = facade.request("GET", "/internal")
    assert outside.status_code == 404 and outside.json()["status"] == 404
    anonymous = requests.get(facade.url + BALANCE.format(1), timeout=5)
    assert anonymous.status_code == 401 and "Bearer" in anonymous.headers["WWW-Authenticate"]
    wrong_key = requests.get(facade.url + BALANCE.format(1), headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong_key.status_code == 401


def test_malformed_and_oversized_bodies_are_refused_and_nothing_is_posted(facade: FacadeClient) -> None:
    before = facade.ledger()
    malformed = facade.request(
        "POST",
        "/v1/payments",
        data=b'{"amount": ',
        headers={"Idempotency-Key": "m1", "Content-Type": "application/json"},
    )
    assert malformed.status_code == 400 and malformed.json()["type"].endswith("/malformed-json")
    oversized = facade.request(
        "POST", "/v1/payments", data=b'{"x": "' + b"a" * 20_000 + b'"}',
        headers={"Idempotency-Key": "m2", "Content-Type": "application/json"},
    )  # fmt: skip
    assert oversized.status_code == 413 and oversized.json()["type"].endswith("/body-too-large")
    invalid = facade.pay(amount="-5")
    assert invalid.status_code == 400 and invalid.json()["field"] == "amount"
    no_key = facade.request("POST", "/v1/payments", json={"amount": "1.00"})
    assert no_key.status_code == 400 and no_key.json()["type"].endswith("/idempotency-key-required")
    assert facade.ledger() == before


def test_unknown_account_is_404_from_the_adapter(facade: FacadeClient) -> None:
    response = facade.request("GET", BALANCE.format(99999))
    assert response.status_code == 404 and response.json()["type"].endswith("/account-not-found")


def test_legacy_outage_opens_the_breaker_then_it_closes_again(facade: FacadeClient) -> None:
    facade.faults(error_rate=1.0, error_status=500)
    refusals: list[requests.Response] = []

    def breaker_open() -> bool:
        response = facade.request("GET", BALANCE.format(1))
        if response.status_code == 503 and "breaker open" in response.json().get("detail", ""):
            refusals.append(response)
        return bool(refusals)

    wait_until(breaker_open, 10, what="the breaker to open")
    assert int(refusals[0].headers["Retry-After"]) >= 1
    assert 'strangler_breaker_state{upstream="legacy"} 2.0' in requests.get(facade.url + "/metrics", timeout=5).text
    facade.faults(error_rate=0.0)

    wait_until(facade.breakers_closed, 15, what="every worker's breaker to close")
    assert facade.request("GET", BALANCE.format(1)).status_code == 200


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (("version: 1", "version: 1\ncapabilities: [oops"), "invalid YAML"),
        (("timestamps: {$.as_of: day}", "normalise: {$.as_of: no_such_thing}"), "unknown normaliser"),
    ],
    ids=["invalid-yaml", "unknown-normaliser"],
)
def test_a_bad_rules_file_is_refused_and_the_last_good_table_keeps_serving(
    facade: FacadeClient, edit: tuple[str, str], reason: str
) -> None:
    rules_path: Path = facade.stack.options.rules_path
    good = rules_path.read_text()
    bad = good.replace(*edit)
    assert bad != good
    try:
        rules_path.write_text(bad)

        def refused() -> bool:
            checks = requests.get(facade.url + "/readyz", timeout=5).json()["checks"]
            said = checks.get("rules_file", "")
            return f"{rules_path}:" in said and "refused" in said and reason in said

        wait_until(refused, 5, what="the facade to refuse the bad file, naming it")
        assert facade.request("GET", BALANCE.format(1)).status_code == 200
    finally:
        rules_path.write_text(good)
    wait_until(lambda: "rules_file" not in requests.get(facade.url + "/readyz", timeout=5).json()["checks"], 5)


def test_health_readiness_and_metrics(facade: FacadeClient) -> None:
    assert requests.get(facade.url + "/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(facade.url + "/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["checks"]["upstream:legacy"] == "ok"
    facade.request("GET", BALANCE.format(1))
    text = requests.get(facade.url + "/metrics", timeout=5).text
    lines = [ln for ln in text.splitlines() if ln.startswith("strangler_requests_total{")]
    legacy = [ln for ln in lines if all(f in ln for f in ('"accounts.balance"', 'mode="legacy"', 'upstream="legacy"'))]
    assert legacy and float(legacy[0].split()[-1]) >= 1
    assert json.loads(json.dumps(ready.json()))["route_version"] >= 1
