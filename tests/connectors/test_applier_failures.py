"""The applier when things go wrong: legacy errors retried, permanent ones dead-lettered and replayed, junk records."""

from __future__ import annotations

import json
from typing import Any

import requests
import sqlalchemy as sa
from click.testing import CliRunner

from cli.events import events
from core.procs import wait_until
from tests.connectors.applier_world import CAPABILITY, World, metric, running

UNKNOWN_CUSTOMER = 4321  # the legacy is seeded with customers 1..100


def test_legacy_errors_are_retried_until_it_recovers(world: World) -> None:
    keys = world.customers(3)
    envelopes = [world.accept(c, {"phone": f"+31 70 {c:04d}"}) for c in keys]
    world.faults(error_rate=1.0, error_status=503)
    world.publish(*envelopes)
    with running(world) as built:
        wait_until(lambda: metric(built, "strangler_applier_retries_total", capability=CAPABILITY) >= 6, 20,
                   what="retries while legacy fails")  # fmt: skip
        assert not any(world.state(e).state in ("applied", "failed") for e in envelopes)
        world.faults()  # legacy is back
        wait_until(lambda: world.settled(envelopes), 30, what="every event applied after legacy recovered")
    rows = [world.state(e) for e in envelopes]
    assert sum(row.attempts for row in rows) > len(rows)  # calls that reached legacy and failed were counted
    assert all(row.error is None for row in rows) and world.dead_letters() == []
    assert [world.legacy_customer(c)["PHONE"] for c in keys] == [f"+31 70 {c:04d}" for c in keys]


def test_a_failing_event_blocks_only_its_own_key_and_is_dead_lettered_after_max_attempts(world: World) -> None:
    world.configure(max_attempts=4, backoff_ms=100)
    blocked, other, third = world.customers(3)
    stuck = world.accept(blocked, {"email": f"stuck{blocked}@example.com"})
    after = world.accept(blocked, {"email": f"after{blocked}@example.com"})
    flowing = [world.accept(c, {"email": f"flowing{c}@example.com"}) for c in (other, third)]
    # Legacy already holds this update reference for another customer: it answers RC 94 to every attempt (a 502).
    taken = {"CUSTNO": f"{third:010d}", "PHONE": "+31 6 0000", "UPDREF": stuck.id}
    assert requests.post(f"{world.legacy.url}/CBS/CUST/PROFUPD", json=taken, timeout=5).json()["RC"] == "00"
    world.publish(stuck, after, *flowing)
    with running(world) as built:
        wait_until(lambda: world.settled([stuck], ("failed",)) and world.settled([after, *flowing]), 30,
                   what="the stuck event dead-lettered and the rest applied")  # fmt: skip
        assert metric(built, "strangler_applier_dead_lettered_total", topic=f"{world.topic}.dlq", why="exhausted") == 1
    rows = world.requests()
    [letter] = world.dead_letters()
    assert rows[stuck.id].attempts == 4 and rows[stuck.id].error["status"] == 502
    assert letter.event_id == stuck.id and letter.reason.startswith("gave up after 4 attempts")
    # The other keys did not wait for the stuck one; its own next update did.
    assert all(rows[e.id].applied_at < letter.failed_at for e in flowing)
    assert rows[after.id].applied_at > letter.failed_at
    assert world.legacy_customer(blocked)["EMAIL"] == f"after{blocked}@example.com"


def test_permanent_errors_are_dead_lettered_and_the_key_goes_on(world: World) -> None:
    [customer] = world.customers(1)
    too_long = world.accept(customer, {"address": {"line1": "1 Long Road", "postcode": "POSTCODE-12345"}})
    later = world.accept(customer, {"email": f"later{customer}@example.com"})
    unknown = world.accept(UNKNOWN_CUSTOMER, {"email": "nobody@example.com"})
    world.publish(too_long, later, unknown)
    with running(world) as built:
        wait_until(lambda: world.settled([too_long, unknown], ("failed",)) and world.settled([later]), 20,
                   what="two dead letters and the later update applied")  # fmt: skip
        assert metric(built, "strangler_applier_failed_total", capability=CAPABILITY) == 2
    rows = world.requests()
    assert rows[too_long.id].error["status"] == 400 and rows[too_long.id].error["title"] == "Invalid profile"
    assert "FORMAT ERROR" in rows[too_long.id].error["detail"]
    assert rows[unknown.id].error["status"] == 404 and rows[unknown.id].error["title"] == "Customer not found"
    assert world.legacy_customer(customer)["EMAIL"] == f"later{customer}@example.com"
    letters = {row.event_id: row for row in world.dead_letters()}
    assert set(letters) == {too_long.id, unknown.id}
    assert "400" in letters[too_long.id].reason and "404" in letters[unknown.id].reason
    assert all(row.partition is not None and row.offset is not None for row in letters.values())
    on_topic = {json.loads(m.value())["id"]: dict(m.headers()) for m in world.dlq_records(2)}
    assert set(on_topic) == {too_long.id, unknown.id}
    assert on_topic[unknown.id]["reason"].decode() == letters[unknown.id].reason
    assert on_topic[unknown.id]["status"] == b"404" and on_topic[unknown.id]["source_topic"] == world.topic.encode()


def dlq(world: World, *args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(events, ["dlq", *args], env=world.env(), input=input, catch_exceptions=False)


def test_operators_list_and_replay_dead_letters_after_fixing_the_cause(world: World) -> None:
    [customer] = world.customers(1)
    too_long = world.accept(customer, {"address": {"postcode": "POSTCODE-12345"}})
    later = world.accept(customer, {"phone": "+31 6 2222"})
    unknown = world.accept(UNKNOWN_CUSTOMER + 1, {"email": "someone.new@example.com"})
    world.publish(too_long, later, unknown)
    with running(world):
        wait_until(lambda: world.settled([too_long, unknown], ("failed",)) and world.settled([later]), 20,
                   what="two dead letters")  # fmt: skip
    letters = {row.event_id: row.id for row in world.dead_letters()}
    listed = dlq(world, "list")
    assert listed.exit_code == 0 and unknown.id in listed.output and too_long.id in listed.output
    assert f"{CAPABILITY} / {UNKNOWN_CUSTOMER + 1}" in listed.output

    failed_again = dlq(world, "replay", str(letters[unknown.id]))
    assert failed_again.exit_code == 1 and "failed again (404)" in failed_again.output
    # The cause is fixed: the customer now exists in the core.
    with world.legacy_engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO cbs.custmast (custno, name, opendt, lstupddt) VALUES (:no, 'NEW', '20240101', '20240101')"
            ),
            {"no": f"{UNKNOWN_CUSTOMER + 1:010d}"},
        )
    replayed = dlq(world, "replay", str(letters[unknown.id]))
    assert replayed.exit_code == 0, replayed.output
    assert world.state(unknown).state == "applied" and world.state(unknown).error is None
    assert world.legacy_customer(UNKNOWN_CUSTOMER + 1)["EMAIL"] == "someone.new@example.com"
    pending = dlq(world, "list", "--pending")
    assert unknown.id not in pending.output and too_long.id in pending.output
    assert "already replayed" in dlq(world, "replay", str(letters[unknown.id])).output

    # An older update whose key moved on: the operator is warned and decides.
    declined = dlq(world, "replay", str(letters[too_long.id]), input="n\n")
    assert declined.exit_code == 1 and "1 newer update(s)" in declined.output and "sequence 2" in declined.output
    assert world.state(too_long).attempts == 1  # nothing was sent
    confirmed = dlq(world, "replay", str(letters[too_long.id]), "--yes")
    assert confirmed.exit_code == 1 and "failed again (400)" in confirmed.output  # still too long for legacy
    assert world.state(too_long).state == "failed" and world.state(too_long).attempts == 2
    unknown_id = dlq(world, "replay", "999999")
    assert unknown_id.exit_code == 1 and "no dead letter 999999" in unknown_id.output


def test_malformed_records_are_dead_lettered_and_the_consumer_goes_on(world: World) -> None:
    [customer] = world.customers(1)
    good = world.accept(customer, {"phone": "+31 6 3333"})
    stranger = json.loads(good.to_json()) | {"id": "x1", "capability": "payments.create"}
    world.publish_raw(b"not json at all", key=str(customer).encode())
    world.publish_raw(json.dumps(stranger).encode(), key=str(customer).encode())
    world.publish_raw(json.dumps(json.loads(good.to_json()) | {"id": "forged"}).encode(), key=str(customer).encode())
    world.publish(good)
    with running(world) as built:
        wait_until(lambda: world.settled([good]) and len(world.dead_letters()) == 3, 20,
                   what="the good event applied and three dead letters")  # fmt: skip
        assert metric(built, "strangler_applier_dead_lettered_total", topic=f"{world.topic}.dlq", why="malformed") == 3
    letters = {row.offset: row for row in world.dead_letters()}  # settled concurrently: junk, stranger, forged
    junk, wrong_capability, forged = (letters[offset] for offset in sorted(letters))
    assert junk.event_id is None and junk.reason.startswith("malformed: not JSON") and junk.value == b"not json at all"
    assert wrong_capability.reason == "unknown capability 'payments.create'"
    assert forged.event_id == "forged" and "not an update the facade accepted" in forged.reason
    assert world.legacy_customer(customer)["PHONE"] == "+31 6 3333"
    assert len(world.dlq_records(3)) == 3
