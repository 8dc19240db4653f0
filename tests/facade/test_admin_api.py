"""The admin API under real gunicorn: admin keys only, the same cutover gate and audit trail as the CLI, and clear
refusals that change nothing."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from core.settings import Settings, SettingsError
from tests.stackclient import FacadeClient

BALANCE = "/v1/accounts/{}/balance"
REFUSED = "refused-route-change"


def admin(facade: FacadeClient, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token or facade.stack.admin_key}", **kwargs.pop("headers", {})}
    return requests.request(method, f"{facade.url}/admin/v1{path}", headers=headers, timeout=30, **kwargs)


def test_only_admin_keys_open_the_admin_api_and_they_open_nothing_else(facade: FacadeClient) -> None:
    listed = admin(facade, "GET", "/routes")
    assert listed.status_code == 200
    routes = {r["capability"]: r for r in listed.json()["routes"]}
    assert set(routes) == set(facade.rules.capabilities)
    assert routes["accounts.balance"]["mode"] == "legacy" and routes["accounts.balance"]["critical"] is True
    assert listed.json()["version"] == facade.routes.version()

    assert admin(facade, "GET", "/routes", token=facade.stack.api_key).status_code == 401  # a portal key
    assert requests.get(f"{facade.url}/admin/v1/routes", timeout=5).status_code == 401
    portal_with_admin_key = requests.get(
        facade.url + BALANCE.format(1), headers={"Authorization": f"Bearer {facade.stack.admin_key}"}, timeout=5
    )
    assert portal_with_admin_key.status_code == 401


def test_a_change_over_the_api_is_gated_audited_and_followed_by_every_worker(facade: FacadeClient) -> None:
    before = facade.routes.version()
    refused = admin(facade, "PUT", "/routes/accounts.balance", json={"mode": "cloud", "reason": "try cloud"})
    assert refused.status_code == 409 and refused.json()["type"].endswith("/not-ready")
    assert refused.json()["failing"]  # the criteria the parallel run has not met yet
    assert facade.routes.version() == before

    shown = admin(facade, "GET", "/routes/accounts.balance")
    assert shown.json()["mode"] == "legacy" and shown.json()["history"][0]["to_mode"] == "legacy"
    forced = admin(
        facade, "PUT", "/routes/accounts.balance", json={"mode": "cloud", "reason": "drill", "force": True},
        headers={"If-Match": shown.headers["ETag"]},  # a change decided on what was read
    )  # fmt: skip
    assert forced.status_code == 200, forced.text
    assert forced.json()["mode"] == "cloud" and forced.json()["previous"]["mode"] == "legacy"
    assert forced.headers["ETag"] == f'"{forced.json()["version"]}"'
    facade.await_upstream(BALANCE.format(5), "cloud", timeout=3)

    back = admin(facade, "POST", "/routes/accounts.balance/rollback", json={"reason": "drill over"})
    assert back.status_code == 200 and back.json()["mode"] == "legacy"
    facade.await_upstream(BALANCE.format(5), "legacy", timeout=3)
    trail = admin(facade, "GET", "/history", params={"capability": "accounts.balance", "limit": 2}).json()["history"]
    assert [(e["actor"], e["to_mode"]) for e in trail] == [("admin:operator", "legacy"), ("admin:operator", "cloud")]
    assert trail[0]["reason"] == "rollback: drill over"
    assert trail[1]["reason"].startswith("drill [FORCED past NOT READY: ")


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "slug"),
    [
        ("/routes/loans.create", {"mode": "cloud", "reason": "r"}, {}, 404, "unknown-capability"),
        ("/routes/accounts.balance", {"mode": "sideways", "reason": "r"}, {}, 422, REFUSED),
        ("/routes/payments.create", {"mode": "events", "reason": "r"}, {}, 422, REFUSED),
        ("/routes/accounts.balance", {"mode": "canary", "percent": 150, "reason": "r"}, {}, 422, REFUSED),
        ("/routes/accounts.balance", {"mode": "legacy"}, {}, 400, "bad-request"),
        ("/routes/accounts.balance", {"mode": "canary", "percent": "ten", "reason": "r"}, {}, 400, "bad-request"),
        ("/routes/accounts.balance", "not an object", {}, 400, "bad-request"),
        ("/routes/accounts.balance", {"mode": "legacy", "reason": "r"}, {"If-Match": '"0"'}, 412, "stale-route"),
        ("/routes/accounts.balance", {"mode": "legacy", "reason": "r"}, {"If-Match": "latest"}, 400, "bad-request"),
    ],
)
def test_bad_changes_are_refused_with_problem_details_and_change_nothing(
    facade: FacadeClient, path: str, body: object, headers: dict[str, str], status: int, slug: str
) -> None:
    before = facade.routes.version()

    response = admin(facade, "PUT", path, json=body, headers=headers)

    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith(f"/{slug}")
    assert facade.routes.version() == before


def test_malformed_json_and_a_rollback_without_a_reason_are_bad_requests(facade: FacadeClient) -> None:
    response = admin(
        facade, "PUT", "/routes/accounts.balance", data=b"{mode:", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["type"].endswith("/bad-request")
    before = facade.routes.version()
    for body in ({}, {"reason": ""}, {"reason": 5}):
        unexplained = admin(facade, "POST", "/routes/accounts.balance/rollback", json=body)
        assert unexplained.status_code == 400 and "reason is required" in unexplained.json()["detail"]
    assert facade.routes.version() == before


def test_an_admin_token_that_is_also_a_portal_token_is_refused_at_start() -> None:
    token = "t" * 20
    env = {"STRANGLER_DATABASE_URL": "postgresql+psycopg://x/y", "STRANGLER_API_KEYS": f"portal:{token}"}
    with pytest.raises(SettingsError, match="STRANGLER_ADMIN_KEYS: a token is also a STRANGLER_API_KEYS token"):
        Settings.from_env({**env, "STRANGLER_ADMIN_KEYS": f"ops:{token}"})
    assert Settings.from_env({**env, "STRANGLER_ADMIN_KEYS": f"ops:{'a' * 20}"}).admin_keys == {"a" * 20: "ops"}


def test_the_admin_page_asks_a_browser_for_the_admin_key_and_shows_routes_escaped(facade: FacadeClient) -> None:
    page = f"{facade.url}/admin/"
    prompt = requests.get(page, timeout=5)
    assert prompt.status_code == 401 and prompt.headers["WWW-Authenticate"] == 'Basic realm="strangler admin"'
    assert requests.get(page, auth=("anyone", facade.stack.api_key), timeout=5).status_code == 401  # a portal key
    cap = facade.rules.capabilities["accounts.balance"]
    facade.routes.set(cap, "legacy", None, "tests", "<script>alert(1)</script> & more")  # a reason is free text

    shown = requests.get(page, auth=("ops", facade.stack.admin_key), timeout=5)

    assert shown.status_code == 200 and shown.headers["Content-Type"].startswith("text/html")
    for name in facade.rules.capabilities:
        assert f"<code>{name}</code>" in shown.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in shown.text and "<script>" not in shown.text
    assert "NOT READY" in shown.text  # no parallel-run evidence for the cloud side in this stack
    assert "<td>legacy</td><td>closed</td>" in shown.text.replace("\n", "").replace(' class=""', "")
