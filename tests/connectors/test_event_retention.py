"""Pruning applied events past their retention (real PostgreSQL, the real legacy core and the applier's own path)."""

from __future__ import annotations

import sqlalchemy as sa
from click.testing import CliRunner

from cli.events import events
from connectors.applier_store import DeadLetter, PostgresApplierStore
from connectors.event_retention import Retention
from core.db import event_key_sequences, event_outbox, event_publications, event_requests
from core.events import Envelope
from facade.events import request_status
from tests.connectors.applier_world import World
from tests.connectors.test_applier_process import consumed, processor_for, settle_all

DAY_S = 86400.0
KEEP_S = 14 * DAY_S


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def age(world: World, *envelopes: Envelope, days: float = 15) -> None:
    """Move these events' acceptance, application and envelope `days` into the past."""
    ids = [e.id for e in envelopes]
    past = sa.func.now() - sa.func.make_interval(0, 0, 0, days)
    with world.engine.begin() as conn:
        conn.execute(
            event_requests.update()
            .where(event_requests.c.event_id.in_(ids))
            .values(accepted_at=past, applied_at=sa.case((event_requests.c.applied_at.is_(None), None), else_=past))
        )
        conn.execute(event_outbox.update().where(event_outbox.c.event_id.in_(ids)).values(created_at=past))


def kept(world: World) -> tuple[set[str], set[str]]:
    """Return the event ids left in the status table and in the outbox."""
    with world.engine.connect() as conn:
        return (
            set(conn.execute(sa.select(event_requests.c.event_id)).scalars()),
            set(conn.execute(sa.select(event_outbox.c.event_id)).scalars()),
        )


def applied_sequence(world: World, key: str) -> int:
    with world.engine.connect() as conn:
        query = sa.select(event_key_sequences.c.applied).where(event_key_sequences.c.key == key)
        return int(conn.execute(query).scalar_one())


def prune(world: World, retention: Retention, all_of_it: bool = True) -> int:
    with world.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return retention.prune_all(conn) if all_of_it else retention.step(conn)


def test_applied_updates_past_the_retention_leave_with_their_copies_and_what_operators_need_stays(
    world: World,
) -> None:
    a, b, c, d, e, f = world.customers(6)
    f1 = world.accept(f, {"email": f"late{f}@example.com"})
    age(world, f1)  # accepted long ago, applied only now (legacy was away): kept for the retention from now
    a1, a2 = world.accept(a, {"email": f"a1{a}@example.com"}), world.accept(a, {"email": f"a2{a}@example.com"})
    b1, b2 = world.accept(b, {"email": f"b1{b}@example.com"}), world.accept(b, {"email": f"b2{b}@example.com"})
    c1, d1, e1 = (world.accept(x, {"email": f"{x}@example.com"}) for x in (c, d, e))
    store = PostgresApplierStore(world.engine)
    letter = DeadLetter(topic=world.topic, reason="rejected by legacy", value=b1.to_json(), key=b1.key, event_id=b1.id)
    assert store.record_failed(b1, {"title": "rejected"}, letter, attempt=True)
    with processor_for(world) as (processor, caller, _):
        settle_all(processor, consumed(world, a1, a2, b2, c1, e1, f1))
        assert caller.calls == [a1.id, a2.id, b2.id, c1.id, e1.id, f1.id]
    with world.engine.begin() as conn:  # e1 is copied again, as the watchdog does for a lost publication
        columns = [event_outbox.c.event_id, event_outbox.c.topic, event_outbox.c.key, event_outbox.c.value]
        copy = sa.select(*columns).where(event_outbox.c.event_id == e1.id)
        conn.execute(event_outbox.insert().from_select([c.name for c in columns], copy))
    age(world, a1, a2, b1, b2, d1, e1)  # c1 was applied just now; d1 was accepted long ago and is not applied yet

    assert prune(world, Retention(KEEP_S)) == 3  # a1, a2 and e1 with both its rows

    # b2 stays because an earlier update of its key failed: a replay of b1 must still see that b2 came after it.
    everything_else = {b1.id, b2.id, c1.id, d1.id, f1.id}
    assert kept(world) == (everything_else, everything_else)
    assert applied_sequence(world, str(a)) == 2  # the key's checkpoint stays: a copy delivered again is not applied
    assert request_status(world.engine, a1.request_id, "portal").status == 404
    assert request_status(world.engine, c1.request_id, "portal").status == 200
    assert prune(world, Retention(KEEP_S)) == 0  # nothing more to do; nothing else goes


def test_a_pruned_update_delivered_again_is_dead_lettered_not_applied_and_its_key_goes_on(world: World) -> None:
    [customer] = world.customers(1)
    first = world.accept(customer, {"email": f"first{customer}@example.com"})
    with processor_for(world) as (processor, _, _):
        settle_all(processor, consumed(world, first))
    age(world, first)
    assert prune(world, Retention(KEEP_S)) == 1
    second = world.accept(customer, {"email": f"second{customer}@example.com"})
    with processor_for(world) as (processor, caller, letters):
        settle_all(processor, consumed(world, second, first))  # the old copy arrives after the newer update
        assert caller.calls == [second.id]
        assert [letter["reason"] for letter in letters.sent] == [
            "not an update the facade accepted (unknown id, key or sequence)"
        ]
    assert world.legacy_customer(customer)["EMAIL"] == f"second{customer}@example.com"
    assert applied_sequence(world, str(customer)) == 2


def test_a_round_prunes_one_batch_per_step_and_ends_at_the_first_update_inside_the_retention(world: World) -> None:
    customers = world.customers(10)
    updates = [world.accept(customer, {"email": f"r{customer}@example.com"}) for customer in customers]
    store = PostgresApplierStore(world.engine)
    for update in updates:
        assert store.record_applied(update) is not None
    old, young = updates[:7], updates[7:]
    age(world, *old)
    clock = Clock()
    retention = Retention(KEEP_S, batch_size=3, interval_s=600, clock=clock)

    assert [prune(world, retention, all_of_it=False) for _ in range(3)] == [3, 3, 1]
    assert kept(world)[0] == {u.id for u in young}
    age(world, *young)
    clock.now += 599
    # The third batch reached a young update, so the round ended there: what aged since waits for the next round.
    assert prune(world, retention, all_of_it=False) == 0
    clock.now += 1
    assert [prune(world, retention, all_of_it=False) for _ in range(2)] == [3, 0]
    assert kept(world) == (set(), set())


def test_operators_prune_from_the_command_line_and_a_retention_of_zero_keeps_everything(world: World) -> None:
    [customer] = world.customers(1)
    update = world.accept(customer, {"email": f"cli{customer}@example.com"})
    assert PostgresApplierStore(world.engine).record_applied(update) is not None
    age(world, update, days=8)
    runner = CliRunner()
    forever = {**world.env(), "STRANGLER_EVENTS_RETENTION_S": "0"}

    refused = runner.invoke(events, ["prune"], env=forever)
    assert refused.exit_code == 1 and "keep forever" in refused.output
    too_short = runner.invoke(events, ["prune", "--older-than-days", "0"], env=world.env())
    assert too_short.exit_code == 2 and "--older-than-days" in too_short.output
    negative = runner.invoke(events, ["prune"], env={**world.env(), "STRANGLER_EVENTS_RETENTION_S": "-1"})
    assert negative.exit_code == 1 and "STRANGLER_EVENTS_RETENTION_S" in negative.output

    within = runner.invoke(events, ["prune"], env=world.env(), catch_exceptions=False)  # default: 14 days
    assert within.output == "removed 0 applied update(s) older than 14 days\n" and kept(world)[0] == {update.id}
    done = runner.invoke(events, ["prune", "--older-than-days", "7"], env=forever, catch_exceptions=False)
    assert done.output == "removed 1 applied update(s) older than 7 days\n" and kept(world) == (set(), set())


def test_a_round_keeps_only_the_publications_that_still_cover_an_outbox_row_and_always_the_last(world: World) -> None:
    customers = world.customers(3)
    updates = [world.accept(customer, {"email": f"p{customer}@example.com"}) for customer in customers]
    with world.engine.begin() as conn:  # one publication up to each row, as a relay publishing them one by one does
        for txid, row_id in conn.execute(sa.select(event_outbox.c.txid, event_outbox.c.id).order_by("txid", "id")):
            conn.execute(event_publications.insert().values(upto_txid=txid, upto_id=row_id, rows=1))
    store = PostgresApplierStore(world.engine)
    for update in updates:
        assert store.record_applied(update) is not None

    def publications() -> list[int]:
        with world.engine.connect() as conn:
            return list(conn.execute(sa.select(event_publications.c.upto_id).order_by("id")).scalars())

    row_ids = publications()
    age(world, *updates[:2])
    assert prune(world, Retention(KEEP_S)) == 2
    assert publications() == row_ids[2:]  # below the remaining row: gone; the one covering it stays
    assert request_status(world.engine, updates[2].request_id, "portal").body["published_at"] is not None
    age(world, updates[2])
    assert prune(world, Retention(KEEP_S)) == 1
    assert publications() == row_ids[2:]  # the outbox is empty, and the relay resumes from the last one
