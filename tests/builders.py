"""Builders shared by the tests: rules files, calls and upstream responses with sensible defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connectors.upstream import UpstreamResponse
from core.calls import Call
from core.rules import RuleSet, parse_rules

REPO = Path(__file__).resolve().parent.parent
SHIPPED_RULES = REPO / "routing_rules.yaml"


def shipped_rules_text(**upstream_urls: str) -> str:
    """Return the shipped routing_rules.yaml text, with upstream URLs replaced where given."""
    text = SHIPPED_RULES.read_text()
    defaults = {"legacy": "http://127.0.0.1:8101", "cloud": "http://127.0.0.1:8102"}
    for name, url in upstream_urls.items():
        text = text.replace(f"url: {defaults[name]}", f"url: {url}")
    return text


def shipped_rules() -> RuleSet:
    return parse_rules(shipped_rules_text(), str(SHIPPED_RULES))


def call(capability: str = "accounts.balance", method: str = "GET", path: str = "/v1/accounts/1/balance",
         body: Any = None, resource_id: str | None = None, **params: str) -> Call:  # fmt: skip
    """Return a Call as the facade would build it."""
    raw = json.dumps(body).encode() if body is not None else b""
    return Call(
        capability=capability, method=method, path=path, path_params=params, body=raw, request_id="req-1",
        client_id="portal", resource_id=resource_id,
    )  # fmt: skip


def response(body: Any, status: int = 200) -> UpstreamResponse:
    """Return an upstream response carrying a JSON body."""
    return UpstreamResponse(
        status=status, headers={"Content-Type": "application/json"}, body=json.dumps(body).encode(),
        elapsed_ms=1.0, attempts=1,
    )  # fmt: skip


# A minimal rules file with one capability in parallel mode whose `compare:` block the test appends.
COMPARE_RULES_HEAD = """\
version: 1
upstreams:
  legacy: {url: "http://127.0.0.1:1"}
  cloud: {url: "http://127.0.0.1:2"}
capabilities:
  accounts.balance:
    match: {method: GET, path: "/v1/accounts/{account_id}/balance"}
    mode: parallel
    compare:
"""
