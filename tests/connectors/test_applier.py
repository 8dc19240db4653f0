"""The event applier against real PostgreSQL, the embedded Kafka broker and the sandbox legacy core under gunicorn."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from core.db import event_key_sequences, event_requests
from core.events import Envelope
from core.procs import wait_until
from tests.connectors.applier_world import CAPABILITY, World, metric, running


def test_an_event_is_applied_and_the_legacy_customer_changes(world: World) -> None:
    [customer] = world.customers(1)
    envelope = world.accept(customer, {"email": f"new.address{customer}@example.com", "phone": "+31 20 555 0101"})
    world.publish(envelope)
    with running(world) as built:
        wait_until(lambda: world.settled([envelope]), 20, what="the event applied")
        row = world.state(envelope)
        assert (row.attempts, row.error) == (1, None) and row.applied_at >= row.accepted_at
        record = world.legacy_customer(customer)
        assert (record["EMAIL"], record["PHONE"]) == (f"new.address{customer}@example.com", "+31 20 555 0101")
        assert world.legacy_log([customer]) == {
            envelope.id: f"{customer:010d}"
        }  # the event id was the update reference
        with world.engine.connect() as conn:
            applied = conn.execute(sa.select(event_key_sequences.c.applied)).scalar_one()
        assert applied == 1
        assert metric(built, "strangler_applier_applied_total", capability=CAPABILITY) == 1
        assert metric(built, "strangler_events_apply_latency_seconds_count", capability=CAPABILITY) == 1
        # The offset is committed after the outcome: the tracked lag drops to zero.
        wait_until(
            lambda: sum(built.applier.tracker.lag().values()) == 0 and bool(built.applier.tracker.lag()),
            10, what="offset committed",
        )  # fmt: skip
        lag = [
            s for m in built.applier.metrics.registry.collect() if m.name == "strangler_consumer_lag" for s in m.samples
        ]
        assert lag and all(s.value == 0 for s in lag) and {s.labels["topic"] for s in lag} == {world.topic}
        assert metric(built, "strangler_applier_inflight_keys") == 0
        assert metric(built, "strangler_applier_assigned_partitions") == 3  # the one consumer of a 3-partition topic
    assert metric(built, "strangler_applier_assigned_partitions") == 0  # left the group on stop


def test_the_same_event_delivered_twice_is_applied_once(world: World) -> None:
    [customer] = world.customers(1)
    first = world.accept(customer, {"email": f"first{customer}@example.com"})
    second = world.accept(customer, {"email": f"second{customer}@example.com"})
    world.publish(first, first, second)
    with running(world) as built:
        wait_until(lambda: world.settled([first, second]), 20, what="both events applied")
        world.publish(first)  # a late redelivery, after a newer update was applied
        wait_until(lambda: metric(built, "strangler_applier_skipped_total", capability=CAPABILITY) == 2, 10,
                   what="both redeliveries skipped")  # fmt: skip
    rows = world.requests()
    assert [rows[e.id].attempts for e in (first, second)] == [1, 1]  # legacy was called once per event
    assert world.legacy_customer(customer)["EMAIL"] == f"second{customer}@example.com"  # not reverted by the repeat
    assert sorted(world.legacy_log([customer])) == sorted([first.id, second.id])


def test_three_hundred_events_over_twenty_keys_apply_in_key_order_despite_shuffled_duplicates(world: World) -> None:
    keys = world.customers(20)
    envelopes = [
        world.accept(c, {"email": f"c{c}.s{s}@example.com", "phone": f"+31 6 {s:04d}"})
        for s in range(1, 16)
        for c in keys
    ]
    rng = random.Random(7)
    deliveries = envelopes + rng.sample(envelopes, 100)
    rng.shuffle(deliveries)
    order: dict[str, list[int]] = defaultdict(list)
    lock = threading.Lock()

    def applied(envelope: Envelope) -> None:
        with lock:
            order[envelope.key].append(envelope.sequence)

    world.publish(*deliveries)
    with running(world, workers=8, on_applied=applied) as built:
        wait_until(lambda: world.settled(envelopes), 60, what="300 events applied")
        assert metric(built, "strangler_applier_applied_total", capability=CAPABILITY) == 300
    assert dict(order) == {str(c): list(range(1, 16)) for c in keys}
    for c in keys:
        record = world.legacy_customer(c)
        assert (record["EMAIL"], record["PHONE"]) == (f"c{c}.s15@example.com", "+31 6 0015")
    assert len(world.legacy_log(keys)) == 300
    with world.engine.connect() as conn:
        # applied_at agrees with the hook: within a key, a later sequence was never applied earlier.
        rows = conn.execute(
            sa.select(event_requests.c.key, event_requests.c.sequence, event_requests.c.applied_at)
        ).all()
    by_key: dict[str, list[Any]] = defaultdict(list)
    for key, _, at in sorted(rows, key=lambda r: (r.key, r.sequence)):
        by_key[key].append(at)
    assert all(times == sorted(times) for times in by_key.values())


def test_a_gap_is_filled_from_the_outbox_in_order(world: World) -> None:
    [customer] = world.customers(1)
    first = world.accept(customer, {"email": f"gap.one{customer}@example.com", "phone": "+31 6 1111"})
    second = world.accept(customer, {"email": f"gap.two{customer}@example.com"})
    order: list[int] = []
    world.publish(second)  # the first was lost (say, by a broker restart) and only exists in the outbox
    with running(world, on_applied=lambda e: order.append(e.sequence)) as built:
        wait_until(lambda: world.settled([first, second]), 20, what="both events applied")
        assert order == [1, 2]
        world.publish(first)  # republished later: already settled
        wait_until(lambda: metric(built, "strangler_applier_skipped_total", capability=CAPABILITY) == 1, 10,
                   what="the republished event skipped")  # fmt: skip
    assert order == [1, 2]
    record = world.legacy_customer(customer)
    assert (record["EMAIL"], record["PHONE"]) == (f"gap.two{customer}@example.com", "+31 6 1111")
    assert world.state(first).attempts == 1
