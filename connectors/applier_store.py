"""The applier's records in the control plane: what is settled, each outcome with its checkpoint, dead letters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on, insert

from core.db import dead_letters, event_key_sequences, event_outbox, event_requests
from core.events import Envelope

SETTLED = frozenset({"applied", "failed"})


@dataclass(frozen=True)
class KeyState:
    """What the control plane knows of one event and its key before the applier calls legacy."""

    known: bool  # the facade accepted an event with this id
    state: str | None
    sequence: int | None
    key: str | None
    applied: int  # the key's last settled sequence (0: none yet)

    def settled(self, sequence: int) -> bool:
        """Return True if this event needs nothing more: applied, failed, or its key is already past it."""
        return self.state in SETTLED or sequence <= self.applied


@dataclass(frozen=True)
class Earlier:
    """An accepted event that precedes the one at hand on the same key, with its envelope from the outbox if kept."""

    sequence: int
    state: str
    value: bytes | None


@dataclass(frozen=True)
class DeadLetter:
    """A record the applier gave up on: where it came from, its bytes and why."""

    topic: str
    reason: str
    value: bytes | None
    key: str | None = None
    event_id: str | None = None
    partition: int | None = None
    offset: int | None = None


@dataclass(frozen=True)
class DeadLetterRow:
    """One row of `dead_letters` as operators see it, with the capability of its event when known."""

    id: int
    event_id: str | None
    capability: str | None
    key: str | None
    topic: str
    partition: int | None
    offset: int | None
    value: bytes | None
    reason: str
    failed_at: datetime
    replayed_at: datetime | None
    state: str | None


def _advance_key_from(rows: sa.Select[Any, Any, Any, Any]) -> sa.Insert:
    """Upsert the key's applied sequence from rows of (capability, key, sequence, sequence), never moving it back."""
    stmt = insert(event_key_sequences).from_select(["capability", "key", "accepted", "applied"], rows)
    # The key row normally exists (the facade hands out sequences there); GREATEST keeps it monotonic under races.
    return stmt.on_conflict_do_update(
        index_elements=[event_key_sequences.c.capability, event_key_sequences.c.key],
        set_={"applied": sa.func.greatest(event_key_sequences.c.applied, stmt.excluded.applied)},
    )


def _advance_key(capability: str, key: str, sequence: int) -> sa.Insert:
    return _advance_key_from(
        sa.select(sa.literal(capability), sa.literal(key), sa.literal(sequence), sa.literal(sequence))
    )


def _open(event_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(event_requests.c.event_id == event_id, event_requests.c.state.not_in(SETTLED))


def _open_by_param() -> sa.ColumnElement[bool]:
    # Not named like a column: in an UPDATE, a parameter named after a column would also be SET.
    return sa.and_(event_requests.c.event_id == sa.bindparam("wanted"), event_requests.c.state.not_in(SETTLED))


_KEY_STATE = sa.select(
    event_requests.c.state,
    event_requests.c.sequence,
    event_requests.c.key,
    event_requests.c.capability,
    sa.select(event_key_sequences.c.applied)
    .where(
        event_key_sequences.c.capability == sa.bindparam("capability"),
        event_key_sequences.c.key == sa.bindparam("key"),
    )
    .scalar_subquery()
    .label("applied"),
).where(event_requests.c.event_id == sa.bindparam("event_id"))

# The states of many events at once (the records of one poll), each with its own key's checkpoint.
_KEY_STATES = (
    sa.select(
        event_requests.c.event_id,
        event_requests.c.state,
        event_requests.c.sequence,
        event_requests.c.key,
        event_requests.c.capability,
        event_key_sequences.c.applied,
    )
    .select_from(
        event_requests.outerjoin(
            event_key_sequences,
            sa.and_(
                event_key_sequences.c.capability == event_requests.c.capability,
                event_key_sequences.c.key == event_requests.c.key,
            ),
        )
    )
    .where(event_requests.c.event_id == sa.any_(sa.bindparam("ids", type_=ARRAY(sa.Text))))
)

# One statement, hence one transaction and one round trip: the request's state and the key's checkpoint.
_MARKED = (
    sa.update(event_requests)
    .where(_open_by_param())
    .values(state="applied", applied_at=sa.func.now(), attempts=event_requests.c.attempts + 1, error=None)
    .returning(
        event_requests.c.capability,
        event_requests.c.key,
        event_requests.c.sequence,
        sa.extract("epoch", sa.func.now() - event_requests.c.accepted_at).label("latency"),
    )
    .cte("marked")
)
_RECORD_APPLIED = sa.select(_MARKED.c.latency).add_cte(
    _advance_key_from(sa.select(_MARKED.c.capability, _MARKED.c.key, _MARKED.c.sequence, _MARKED.c.sequence)).cte(
        "advanced"
    )
)


class PostgresApplierStore:
    """Reads and writes the applier's state; every outcome is one transaction together with the key's checkpoint."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        # Single statements on the hot path run without BEGIN/COMMIT: each is atomic on its own.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    def key_state(self, event_id: str, capability: str, key: str) -> KeyState:
        """Return the event's state and its key's applied sequence."""
        with self._autocommit.connect() as conn:
            row = conn.execute(_KEY_STATE, {"event_id": event_id, "capability": capability, "key": key}).first()
        if row is None:
            return KeyState(False, None, None, None, 0)
        return KeyState(row.capability == capability, row.state, row.sequence, row.key, row.applied or 0)

    def key_states(self, events: Sequence[tuple[str, str]]) -> dict[str, KeyState]:
        """Return the state of each known event of (event id, capability) pairs, read in one statement."""
        capability_of = dict(events)
        with self._autocommit.connect() as conn:
            rows = conn.execute(_KEY_STATES, {"ids": list(capability_of)}).all()
        return {
            row.event_id: KeyState(
                row.capability == capability_of[row.event_id], row.state, row.sequence, row.key, row.applied or 0
            )
            for row in rows
        }

    def earlier(self, capability: str, key: str, after: int, before: int) -> list[Earlier]:
        """Return the accepted events of a key with after < sequence < before, in order, with their outbox envelopes."""
        query = (
            sa.select(event_requests.c.sequence, event_requests.c.state, event_outbox.c.value)
            .select_from(event_requests.outerjoin(event_outbox, event_outbox.c.event_id == event_requests.c.event_id))
            .where(
                event_requests.c.capability == capability,
                event_requests.c.key == key,
                event_requests.c.sequence > after,
                event_requests.c.sequence < before,
            )
            .ext(distinct_on(event_requests.c.sequence))
            .order_by(event_requests.c.sequence, event_outbox.c.id.desc())
        )
        with self.engine.connect() as conn:
            return [Earlier(row.sequence, row.state, row.value) for row in conn.execute(query)]

    def record_applied(self, envelope: Envelope) -> float | None:
        """Mark the event applied, move its key's checkpoint; return seconds since it was accepted (None: settled)."""
        with self._autocommit.connect() as conn:
            latency = conn.execute(_RECORD_APPLIED, {"wanted": envelope.id}).scalar()
        return None if latency is None else float(latency)

    def record_attempt(self, event_id: str) -> int:
        """Count one more call to legacy that did not settle the event; return its attempts so far."""
        bump = (
            sa.update(event_requests)
            .where(_open(event_id))
            .values(attempts=event_requests.c.attempts + 1)
            .returning(event_requests.c.attempts)
        )
        with self._autocommit.connect() as conn:
            return int(conn.execute(bump).scalar() or 0)

    def record_failed(self, envelope: Envelope, error: Mapping[str, Any], letter: DeadLetter, attempt: bool) -> bool:
        """Mark the event failed, move its key past it, keep its dead letter (one transaction); False if settled."""
        values: dict[str, Any] = {"state": "failed", "error": dict(error)}
        if attempt:
            values["attempts"] = event_requests.c.attempts + 1
        mark = sa.update(event_requests).where(_open(envelope.id)).values(**values).returning(event_requests.c.event_id)
        with self.engine.begin() as conn:
            if conn.execute(mark).first() is None:
                return False
            conn.execute(_advance_key(envelope.capability, envelope.key, envelope.sequence))
            conn.execute(sa.insert(dead_letters).values(**_letter_values(letter)))
        return True

    def record_malformed(self, letter: DeadLetter) -> int:
        """Keep the dead letter of a record that is not an applicable envelope (once per record); return its id."""
        values = _letter_values(letter)
        # A crash before the offset commit redelivers the record: the same bytes at the same place are one letter.
        same = sa.and_(*(dead_letters.c[name].is_not_distinct_from(value) for name, value in values.items()))
        with self.engine.begin() as conn:
            existing = conn.execute(sa.select(dead_letters.c.id).where(same).limit(1)).scalar()
            if existing is not None:
                return int(existing)
            return int(conn.execute(sa.insert(dead_letters).values(**values).returning(dead_letters.c.id)).scalar_one())

    def dead_letters(self, limit: int = 100, pending_only: bool = False) -> list[DeadLetterRow]:
        """Return the newest dead letters first; `pending_only` leaves out the replayed ones."""
        query = _dead_letter_query().order_by(dead_letters.c.id.desc()).limit(limit)
        if pending_only:
            query = query.where(dead_letters.c.replayed_at.is_(None))
        with self.engine.connect() as conn:
            return [DeadLetterRow(**row._mapping) for row in conn.execute(query)]

    def dead_letter(self, letter_id: int) -> DeadLetterRow | None:
        """Return one dead letter by id, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(_dead_letter_query().where(dead_letters.c.id == letter_id)).first()
        return None if row is None else DeadLetterRow(**row._mapping)

    def newer_applied(self, capability: str, key: str, sequence: int) -> list[int]:
        """Return the sequences of the key's events after `sequence` that were applied."""
        query = (
            sa.select(event_requests.c.sequence)
            .where(
                event_requests.c.capability == capability,
                event_requests.c.key == key,
                event_requests.c.sequence > sequence,
                event_requests.c.state == "applied",
            )
            .order_by(event_requests.c.sequence)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def record_replayed(self, letter_id: int, envelope: Envelope) -> None:
        """Mark a dead-lettered event applied after a replay, and the dead letter replayed, in one transaction."""
        mark = (
            sa.update(event_requests)
            .where(event_requests.c.event_id == envelope.id, event_requests.c.state != "applied")
            .values(state="applied", applied_at=sa.func.now(), attempts=event_requests.c.attempts + 1, error=None)
        )
        with self.engine.begin() as conn:
            conn.execute(mark)
            conn.execute(_advance_key(envelope.capability, envelope.key, envelope.sequence))
            conn.execute(
                sa.update(dead_letters).where(dead_letters.c.id == letter_id).values(replayed_at=sa.func.now())
            )

    def record_replay_failed(self, envelope: Envelope, error: Mapping[str, Any]) -> None:
        """Keep the latest error of a replay that failed again (the event stays failed)."""
        mark = (
            sa.update(event_requests)
            .where(event_requests.c.event_id == envelope.id, event_requests.c.state == "failed")
            .values(error=dict(error), attempts=event_requests.c.attempts + 1)
        )
        with self.engine.begin() as conn:
            conn.execute(mark)


def _letter_values(letter: DeadLetter) -> dict[str, Any]:
    return {
        "event_id": letter.event_id,
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "key": letter.key,
        "value": letter.value,
        "reason": letter.reason[:2000],
    }


def _dead_letter_query() -> sa.Select[Any]:
    columns: Sequence[Any] = (
        dead_letters.c.id,
        dead_letters.c.event_id,
        event_requests.c.capability,
        dead_letters.c.key,
        dead_letters.c.topic,
        dead_letters.c.partition,
        dead_letters.c.offset,
        dead_letters.c.value,
        dead_letters.c.reason,
        dead_letters.c.failed_at,
        dead_letters.c.replayed_at,
        event_requests.c.state,
    )
    return sa.select(*columns).select_from(
        dead_letters.outerjoin(event_requests, event_requests.c.event_id == dead_letters.c.event_id)
    )
