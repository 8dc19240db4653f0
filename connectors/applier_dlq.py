"""Replaying a dead-lettered update through the applier's own apply path, for operators (`strangler events dlq`)."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.applier_call import EventCaller, Result
from connectors.applier_store import DeadLetterRow, PostgresApplierStore
from core.events import Envelope, EnvelopeError


class ReplayRefused(Exception):
    """This dead letter cannot be replayed; the message says why."""


@dataclass(frozen=True)
class ReplayPlan:
    """A dead letter about to be replayed, with the key's newer updates applied since (their values may be undone)."""

    letter: DeadLetterRow
    envelope: Envelope
    newer_applied: list[int]


def plan_replay(store: PostgresApplierStore, letter_id: int) -> ReplayPlan:
    """Return what replaying dead letter `letter_id` involves, or raise ReplayRefused."""
    letter = store.dead_letter(letter_id)
    if letter is None:
        raise ReplayRefused(f"no dead letter {letter_id}")
    if letter.replayed_at is not None:
        raise ReplayRefused(f"dead letter {letter_id} was already replayed at {letter.replayed_at:%Y-%m-%d %H:%M:%S%z}")
    if letter.event_id is None or letter.state is None:
        raise ReplayRefused(f"dead letter {letter_id} is not an accepted update ({letter.reason})")
    if letter.state != "failed":
        raise ReplayRefused(f"event {letter.event_id} is {letter.state}, not failed: nothing to replay")
    try:
        envelope = Envelope.from_json(letter.value)
    except EnvelopeError as exc:
        raise ReplayRefused(f"dead letter {letter_id} holds no readable envelope: {exc}") from None
    newer = store.newer_applied(envelope.capability, envelope.key, envelope.sequence)
    return ReplayPlan(letter, envelope, newer)


def replay(store: PostgresApplierStore, caller: EventCaller, plan: ReplayPlan) -> Result:
    """Apply the dead-lettered event to legacy now; on success mark it applied and the letter replayed."""
    if plan.envelope.capability not in caller.caps:
        raise ReplayRefused(f"capability {plan.envelope.capability!r} has no events block in the rules any more")
    result = caller.apply(plan.envelope)
    if result.kind == "applied":
        store.record_replayed(plan.letter.id, plan.envelope)
    else:
        store.record_replay_failed(plan.envelope, dict(result.error) or {"status": result.status})
    return result
