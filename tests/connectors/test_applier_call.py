"""Unit tests of how the applier calls legacy for one envelope and classifies the answer (legacy on loopback)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.adapters import adapter_registry
from connectors.applier_call import ApplierConfigError, EventCaller, events_capabilities
from core.events import Envelope
from core.rules import parse_rules
from tests.builders import shipped_rules, shipped_rules_text
from tests.connectors.upstream_fakes import Reply, ScriptedUpstream, make_client, scripted

PROFUPD = "/CBS/CUST/PROFUPD"
RECORD = {"RC": "00", "CUSTNO": "0000000007", "NAME": "N", "EMAIL": "a@b.example", "PHONE": "1", "ADDR1": "",
          "CITY": "", "POSTCD": "", "LSTUPDDT": "20260101", "DUPFLG": "N"}  # fmt: skip


def envelope(body: Any, customer: str = "7") -> Envelope:
    return Envelope(
        id="evt-1", type="profile.update.requested", capability="profile.update", key=customer,
        occurred_at="2026-01-01T00:00:00Z", request_id="req-1", sequence=1,
        payload={"path_params": {"customer_id": customer}, "body": body, "client_id": "portal"},
    )  # fmt: skip


@pytest.fixture
def mock() -> Iterator[ScriptedUpstream]:
    with scripted() as server:
        yield server


def caller_for(base_url: str) -> EventCaller:
    adapters = adapter_registry()
    client = make_client(base_url, [], retry_attempts=2)
    return EventCaller(events_capabilities(shipped_rules(), adapters), adapters, client)


@pytest.fixture
def caller(mock: ScriptedUpstream) -> EventCaller:
    return caller_for(mock.url)


def test_the_event_id_is_the_update_reference_and_the_request_id_travels(
    mock: ScriptedUpstream, caller: EventCaller
) -> None:
    mock.script("POST", PROFUPD, Reply(json=RECORD))
    result = caller.apply(envelope({"email": "a@b.example"}))
    assert result.kind == "applied" and result.status == 200
    sent = mock.calls[0]
    assert json.loads(sent.body or b"") == {"CUSTNO": "0000000007", "EMAIL": "a@b.example", "UPDREF": "evt-1"}
    assert sent.headers["X-Request-ID"] == "req-1"
    call = caller.call_for(envelope({"email": "a@b.example"}))
    assert (call.method, call.path, call.resource_id) == ("PATCH", "/v1/customers/7/profile", "evt-1")


def test_a_5xx_is_retried_in_line_because_the_update_reference_makes_it_safe(
    mock: ScriptedUpstream, caller: EventCaller
) -> None:
    mock.script("POST", PROFUPD, Reply(503, json={"RC": "96"}), Reply(json=RECORD))
    assert caller.apply(envelope({"phone": "+31 6 1234"})).kind == "applied"
    assert len(mock.calls) == 2


@pytest.mark.parametrize(
    ("answer", "kind", "status", "title"),
    [
        ({"status": 200, "json": {"RC": "14", "RCDESC": "NO SUCH CUSTOMER"}}, "permanent", 404, "Customer not found"),
        ({"status": 400, "json": {"RC": "30", "RCDESC": "FORMAT ERROR POSTCD"}}, "permanent", 400, "Invalid profile"),
        ({"status": 503, "json": {"RC": "96"}}, "transient", 503, "Core system unavailable"),
        ({"status": 200, "json": {"RC": "94", "RCDESC": "DUPLICATE REFERENCE"}}, "transient", 502, "Core system error"),
    ],
)
def test_legacy_answers_are_classified(
    mock: ScriptedUpstream, caller: EventCaller, answer: dict[str, Any], kind: str, status: int, title: str
) -> None:
    mock.script("POST", PROFUPD, Reply(**answer))
    result = caller.apply(envelope({"email": "a@b.example"}))
    assert (result.kind, result.status, result.error["title"], result.sent) == (kind, status, title, True)


def test_a_call_that_never_left_does_not_count_as_an_attempt() -> None:
    with scripted(listen=False) as refusing:
        result = caller_for(refusing.url).apply(envelope({"email": "a@b.example"}))
    assert (result.kind, result.sent) == ("transient", False)


def test_an_update_legacy_could_never_take_fails_for_good_without_a_call(
    mock: ScriptedUpstream, caller: EventCaller
) -> None:
    result = caller.apply(envelope({"nickname": "x"}))
    assert (result.kind, result.status, result.sent) == ("permanent", 400, False)
    assert "unknown fields: nickname" in result.error["detail"] and len(mock.calls) == 0


def test_an_events_capability_without_a_legacy_adapter_is_refused() -> None:
    text = shipped_rules_text().replace("adapters: {legacy: legacy.profile_update}", "adapters: {legacy: legacy.nope}")
    with pytest.raises(ApplierConfigError, match=r"\[profile.update\] events need a known legacy adapter"):
        events_capabilities(parse_rules(text), adapter_registry())
