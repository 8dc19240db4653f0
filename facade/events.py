"""Events mode: accept an update durably into the outbox (one transaction) and answer 202 with a status URL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from core.calls import Outcome
from core.db import event_key_sequences, event_outbox, event_requests
from core.events import Envelope
from core.problems import problem
from facade.dispatch import Dispatcher
from facade.modes import Mode, Routed

STATUS_PATH = "/v1/requests/"


def status_url(request_id: str) -> str:
    return STATUS_PATH + request_id


class EventsMode(Mode):
    """Validate the update as legacy would, write it to the outbox with the next per-key sequence, answer 202."""

    def __init__(self, dispatcher: Dispatcher, engine: sa.Engine) -> None:
        self.dispatcher, self.engine = dispatcher, engine

    def handle(self, routed: Routed) -> Outcome:
        cap, call = routed.cap, routed.call
        assert cap.events is not None, "the rules loader refuses events mode without an events block"
        # The legacy adapter refuses what legacy would refuse, before anything is written (AdapterInputError → 400).
        self.dispatcher.adapter_for(cap, cap.primary).request(call)
        key = call.field(cap.events.key_by)
        if key is None:
            return problem(400, "invalid-request", "Missing key", f"{cap.events.key_by} is required")
        request_id = call.resource_id or f"req_{uuid.uuid4().hex}"
        event_id = uuid.uuid4().hex
        with self.engine.begin() as conn:
            sequence = conn.execute(
                insert(event_key_sequences)
                .values(capability=cap.name, key=key, accepted=1)
                .on_conflict_do_update(
                    index_elements=["capability", "key"], set_={"accepted": event_key_sequences.c.accepted + 1}
                )
                .returning(event_key_sequences.c.accepted)
            ).scalar_one()
            envelope = Envelope(
                id=event_id, type=f"{cap.name}.requested", capability=cap.name, key=key,
                occurred_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                request_id=call.request_id, sequence=sequence,
                payload={"path_params": dict(call.path_params), "body": call.json, "client_id": call.client_id},
            )  # fmt: skip
            conn.execute(
                event_requests.insert().values(
                    request_id=request_id, event_id=event_id, client_id=call.client_id, capability=cap.name,
                    key=key, sequence=sequence, state="accepted",
                )
            )  # fmt: skip
            conn.execute(
                event_outbox.insert().values(
                    event_id=event_id, topic=cap.events.topic, key=key, value=envelope.to_json()
                )
            )
        url = status_url(request_id)
        body = {"request_id": request_id, "status": "accepted", "status_url": url}
        return Outcome(202, body, headers={"Location": url}, upstream="outbox")


def request_status(engine: sa.Engine, request_id: str, client_id: str) -> Outcome:
    """Return an accepted update's status for the client that made it; anyone else gets 404, as for an unknown id."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(event_requests).where(
                event_requests.c.request_id == request_id, event_requests.c.client_id == client_id
            )
        ).first()
    if row is None:
        return problem(404, "request-not-found", "Request not found", f"no request {request_id}")

    def iso(value: datetime | None) -> str | None:
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") if value else None

    body: dict[str, Any] = {
        "request_id": row.request_id, "capability": row.capability, "key": row.key, "status": row.state,
        "attempts": row.attempts, "accepted_at": iso(row.accepted_at), "published_at": iso(row.published_at),
        "applied_at": iso(row.applied_at),
    }  # fmt: skip
    if row.error:
        body["error"] = row.error
    return Outcome(200, body)
