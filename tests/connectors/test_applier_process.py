"""Settling records whose event states were read in one statement when consumed (real PostgreSQL and legacy)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from connectors.applier import build_parts
from connectors.applier_call import EventCaller, Result
from connectors.applier_metrics import ApplierMetrics
from connectors.applier_process import EventProcessor, Record, parse_record
from core.events import Envelope
from tests.connectors.applier_world import CAPABILITY, World

_offsets = itertools.count()


class Letters:
    """A dead-letter sink that keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[Mapping[str, str]] = []

    def send(self, topic: str, key: str | None, value: bytes | None, headers: Mapping[str, str]) -> None:
        self.sent.append(headers)


class CountingCaller:
    """The real legacy caller, noting the id of every event it sends."""

    def __init__(self, caller: EventCaller) -> None:
        self.caller = caller
        self.calls: list[str] = []

    def apply(self, envelope: Envelope) -> Result:
        self.calls.append(envelope.id)
        return self.caller.apply(envelope)


@contextmanager
def processor_for(world: World) -> Iterator[tuple[EventProcessor, CountingCaller, Letters]]:
    store, caller, caps, close = build_parts(world.settings())
    counting, letters = CountingCaller(caller), Letters()
    try:
        yield EventProcessor(store, counting, letters, caps, ApplierMetrics()), counting, letters  # type: ignore[arg-type]
    finally:
        close()


def consumed(world: World, *envelopes: Envelope) -> list[Record]:
    """The records a poll would hand over for these envelopes, in this order."""
    caps = build_parts(world.settings())[2]
    return [
        parse_record(world.topic, 0, next(_offsets), e.key.encode(), e.to_json(), caps) for e in envelopes
    ]  # fmt: skip


def skipped(processor: EventProcessor) -> float:
    labels = {"capability": CAPABILITY}
    return processor.metrics.registry.get_sample_value("strangler_applier_skipped_total", labels) or 0.0


def settle_all(processor: EventProcessor, records: list[Record]) -> None:
    assert [processor.process(r) for r in records] == [None] * len(records)


def test_the_states_of_a_poll_are_read_at_once_and_a_duplicate_in_it_is_not_sent_again(world: World) -> None:
    [customer] = world.customers(1)
    first = world.accept(customer, {"email": f"one{customer}@example.com"})
    second = world.accept(customer, {"email": f"two{customer}@example.com"})
    with processor_for(world) as (processor, caller, letters):
        records = processor.prefetch(consumed(world, first, first, second))
        assert [(r.known.state, r.known.sequence, r.known.applied) for r in records if r.known] == [
            ("accepted", 1, 0), ("accepted", 1, 0), ("accepted", 2, 0),
        ]  # fmt: skip
        settle_all(processor, records)
        # Read as "accepted" before the first copy settled, the second copy is still not sent to legacy again.
        assert caller.calls == [first.id, second.id] and skipped(processor) == 1 and not letters.sent
    assert world.settled([first, second])
    assert world.legacy_customer(customer)["EMAIL"] == f"two{customer}@example.com"


def test_a_state_read_before_another_applier_settled_the_key_is_read_again_not_replayed(world: World) -> None:
    [customer] = world.customers(1)
    first = world.accept(customer, {"email": f"early{customer}@example.com"})
    second = world.accept(customer, {"email": f"late{customer}@example.com"})
    with processor_for(world) as (processor, caller, _), processor_for(world) as (other, _, _):
        [late] = processor.prefetch(consumed(world, second))
        assert late.known is not None and late.known.applied == 0  # a gap, as far as this read goes
        settle_all(other, consumed(world, first))  # meanwhile, say, the partition's previous owner applied it
        settle_all(processor, [late])
        # The gap was checked again before filling it: the first update is not applied a second time.
        assert caller.calls == [second.id]
    assert world.settled([first, second])
    assert world.legacy_customer(customer)["EMAIL"] == f"late{customer}@example.com"


def test_records_are_still_settled_when_their_states_cannot_be_read_at_consumption(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    [customer] = world.customers(1)
    update = world.accept(customer, {"email": f"outage{customer}@example.com"})
    forged = Envelope(
        id="never-accepted", type=f"{CAPABILITY}.requested", capability=CAPABILITY, key=str(customer),
        occurred_at=update.occurred_at, request_id="req_forged", sequence=2,
        payload={"path_params": {"customer_id": str(customer)}, "body": {"email": "forged@example.com"}},
    )  # fmt: skip
    with processor_for(world) as (processor, caller, letters):

        def database_away(events: object) -> None:
            raise sa.exc.OperationalError("SELECT", {}, Exception("connection refused"))

        with monkeypatch.context() as patch:
            patch.setattr(processor.store, "key_states", database_away)
            records = processor.prefetch(consumed(world, update, forged))
        assert [r.known for r in records] == [None, None]
        settle_all(processor, records)  # each state is read when its record is settled
        assert caller.calls == [update.id]  # the forged one never reaches legacy: it is dead-lettered
        assert [letter["reason"] for letter in letters.sent] == [
            "not an update the facade accepted (unknown id, key or sequence)"
        ]
    assert world.settled([update])
