"""Events mode through the real facade: durable accept, status for its own client only, bad input writes nothing."""

from __future__ import annotations

import requests
import sqlalchemy as sa

from core.db import event_outbox, event_requests
from core.events import Envelope
from facade.events import split_at_sequence
from tests.conftest import OTHER_CLIENT_TOKEN
from tests.stackclient import FacadeClient

PROFILE = "/v1/customers/{}/profile"


def outbox_rows(facade: FacadeClient) -> int:
    with facade.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(event_outbox)).scalar_one())


def test_an_update_is_accepted_durably_with_a_status_url(facade: FacadeClient) -> None:
    response = facade.request("PATCH", PROFILE.format(7), json={"email": "seven@example.com"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "accepted" and response.headers["Location"] == body["status_url"]
    assert response.headers["X-Strangler-Upstream"] == "outbox"
    with facade.engine.connect() as conn:
        row = conn.execute(sa.select(event_requests).where(event_requests.c.request_id == body["request_id"])).one()
        record = conn.execute(sa.select(event_outbox).where(event_outbox.c.event_id == row.event_id)).one()
    envelope = Envelope.from_json(record.value)
    assert (record.key, record.topic, envelope.key, envelope.capability) == (
        "7", "strangler.profile-updates", "7", "profile.update",
    )  # fmt: skip
    assert envelope.payload["body"] == {"email": "seven@example.com"} and envelope.sequence == row.sequence
    assert envelope.request_id == response.headers["X-Request-ID"]
    status = facade.request("GET", body["status_url"])
    assert status.status_code == 200 and status.json()["status"] in ("accepted", "published", "applied")


def test_one_customers_updates_get_consecutive_sequences(facade: FacadeClient) -> None:
    ids = [facade.request("PATCH", PROFILE.format(8), json={"phone": f"+47 555 {i:04d}"}).json() for i in range(5)]
    with facade.engine.connect() as conn:
        sequences = [
            conn.execute(
                sa.select(event_requests.c.sequence).where(event_requests.c.request_id == b["request_id"])
            ).scalar_one()
            for b in ids
        ]
    assert sequences == list(range(sequences[0], sequences[0] + 5))


def test_status_is_readable_only_by_the_same_client(facade: FacadeClient) -> None:
    body = facade.request("PATCH", PROFILE.format(9), json={"phone": "+47 555 0000"}).json()
    other = requests.get(
        facade.url + body["status_url"], headers={"Authorization": f"Bearer {OTHER_CLIENT_TOKEN}"}, timeout=5
    )
    assert other.status_code == 404
    unknown = facade.request("GET", "/v1/requests/req_does_not_exist")
    assert unknown.status_code == 404 and unknown.headers["Content-Type"] == "application/problem+json"


def test_invalid_updates_are_refused_and_nothing_is_written(facade: FacadeClient) -> None:
    before = outbox_rows(facade)
    for body in ({"email": "not-an-email"}, {"shoe_size": 44}, {}):
        response = facade.request("PATCH", PROFILE.format(7), json=body)
        assert response.status_code == 400 and response.json()["type"].endswith("/invalid-request"), body
    malformed = facade.request("PATCH", PROFILE.format(7), data=b"{", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400
    assert facade.request("PATCH", PROFILE.format(0), json={"email": "a@b.io"}).status_code == 400
    assert outbox_rows(facade) == before


def test_the_same_idempotency_key_replays_the_same_acceptance(facade: FacadeClient) -> None:
    before = outbox_rows(facade)
    headers = {"Idempotency-Key": "profile-once"}
    first = facade.request("PATCH", PROFILE.format(10), json={"email": "ten@example.com"}, headers=headers)
    again = facade.request("PATCH", PROFILE.format(10), json={"email": "ten@example.com"}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["request_id"] == again.json()["request_id"]
    assert outbox_rows(facade) == before + 1


def test_the_sequence_is_spliced_into_the_envelope_even_when_the_payload_has_members_of_that_name() -> None:
    envelope = Envelope(
        id="e1", type="profile.update.requested", capability="profile.update", key="7", occurred_at="2026-01-01T00:00Z",
        request_id="r1", sequence=1, payload={"body": {"sequence": 0, "type": "x"}, "sequence": 0, "type": "y"},
    )  # fmt: skip
    head, tail = split_at_sequence(envelope)
    for sequence in (1, 42, 1234567):
        assert Envelope.from_json(head + str(sequence).encode() + tail) == Envelope(
            **{**envelope.__dict__, "sequence": sequence}
        )
