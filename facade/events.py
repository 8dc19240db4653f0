"""Events mode: accept an update durably into the outbox (one statement) and answer 202 with a status URL."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from core.calls import Outcome
from core.db import event_key_sequences, event_outbox, event_requests
from core.events import Envelope
from core.outbox import published_at as outbox_published_at
from core.problems import problem
from facade.dispatch import Dispatcher
from facade.modes import Mode, Routed

STATUS_PATH = "/v1/requests/"


def status_url(request_id: str) -> str:
    return STATUS_PATH + request_id


# The envelope is rendered with this sequence and the database splices in the real one (JSON keys are sorted, so the
# envelope's own `sequence` is the last such member: only the `type` string follows it).
_SENTINEL = 0
_SEQUENCE_AT = b',"sequence":0,"type":'


def _accept_statement() -> sa.Insert:
    """One statement, hence one transaction and one round trip: next per-key sequence, request, outbox row.

    The key's row lock is the statement's first write, so a later update of the key waits for it with a later
    transaction id: the relay's (transaction id, id) order follows each key's sequence (the applier restores the
    order in the rare race where two first updates of a new key collide).
    """
    seq = (
        insert(event_key_sequences)
        .values(capability=sa.bindparam("capability"), key=sa.bindparam("key"), accepted=1)
        .on_conflict_do_update(
            index_elements=["capability", "key"], set_={"accepted": event_key_sequences.c.accepted + 1}
        )
        .returning(event_key_sequences.c.accepted.label("sequence"))
        .cte("seq")
    )
    request = event_requests.insert().from_select(
        ["request_id", "event_id", "client_id", "capability", "key", "sequence", "state"],
        sa.select(
            sa.bindparam("request_id", type_=sa.Text), sa.bindparam("event_id", type_=sa.Text),
            sa.bindparam("client_id", type_=sa.Text), sa.bindparam("capability", type_=sa.Text),
            sa.bindparam("key", type_=sa.Text), seq.c.sequence, sa.literal("accepted", sa.Text),
        ),
    ).cte("request")  # fmt: skip
    value = (
        sa.bindparam("head", type_=sa.LargeBinary)
        .op("||", return_type=sa.LargeBinary)(sa.func.convert_to(sa.cast(seq.c.sequence, sa.Text), "UTF8"))
        .op("||", return_type=sa.LargeBinary)(sa.bindparam("tail", type_=sa.LargeBinary))
    )
    return (
        event_outbox.insert()
        .from_select(
            ["event_id", "topic", "key", "value"],
            sa.select(
                sa.bindparam("event_id", type_=sa.Text),
                sa.bindparam("topic", type_=sa.Text),
                sa.bindparam("key", type_=sa.Text),
                value,
            ),
        )
        .add_cte(seq, request)
    )


ACCEPT = _accept_statement()


def split_at_sequence(envelope: Envelope) -> tuple[bytes, bytes]:
    """Return the envelope's JSON (rendered with the sentinel sequence) before and after its sequence's digits."""
    raw = replace(envelope, sequence=_SENTINEL).to_json()
    at = raw.rindex(_SEQUENCE_AT) + len(b',"sequence":')  # where the sentinel digit sits
    return raw[:at], raw[at + 1 :]


class EventsMode(Mode):
    """Validate the update as legacy would, write it to the outbox with the next per-key sequence, answer 202."""

    def __init__(self, dispatcher: Dispatcher, engine: sa.Engine) -> None:
        self.dispatcher, self.engine = dispatcher, engine
        # The accept is one statement: atomic on its own, so no BEGIN/COMMIT round trips around it.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

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
        envelope = Envelope(
            id=event_id, type=f"{cap.name}.requested", capability=cap.name, key=key,
            occurred_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            request_id=call.request_id, sequence=_SENTINEL,
            payload={"path_params": dict(call.path_params), "body": call.json, "client_id": call.client_id},
        )  # fmt: skip
        head, tail = split_at_sequence(envelope)
        params = {
            "capability": cap.name, "key": key, "request_id": request_id, "event_id": event_id,
            "client_id": call.client_id, "topic": cap.events.topic, "head": head, "tail": tail,
        }  # fmt: skip
        with self._autocommit.connect() as conn:
            conn.execute(ACCEPT, params)
        url = status_url(request_id)
        body = {"request_id": request_id, "status": "accepted", "status_url": url}
        return Outcome(202, body, headers={"Location": url}, upstream="outbox")


def request_status(engine: sa.Engine, request_id: str, client_id: str) -> Outcome:
    """Return an accepted update's status for the client that made it; anyone else gets 404, as for an unknown id."""
    # Published is read from the relay's publication log (the first of the event's outbox rows to be published): the
    # relay never writes a request or an outbox row.
    published_at = (
        sa.select(sa.func.min(outbox_published_at(event_outbox)))
        .where(event_outbox.c.event_id == event_requests.c.event_id)
        .scalar_subquery()
        .label("published_at")
    )
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(event_requests, published_at).where(
                event_requests.c.request_id == request_id, event_requests.c.client_id == client_id
            )
        ).first()
    if row is None:
        return problem(404, "request-not-found", "Request not found", f"no request {request_id}")

    def iso(value: datetime | None) -> str | None:
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") if value else None

    status = "published" if row.state == "accepted" and row.published_at is not None else row.state
    body: dict[str, Any] = {
        "request_id": row.request_id, "capability": row.capability, "key": row.key, "status": status,
        "attempts": row.attempts, "accepted_at": iso(row.accepted_at), "published_at": iso(row.published_at),
        "applied_at": iso(row.applied_at),
    }  # fmt: skip
    if row.error:
        body["error"] = row.error
    return Outcome(200, body)
