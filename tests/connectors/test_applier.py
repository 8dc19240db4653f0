"""The event applier against real PostgreSQL, the embedded Kafka broker and the sandbox legacy core under gunicorn."""

from __future__ import annotations

import itertools
import random
import re
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from confluent_kafka import Consumer, Producer

from connectors.applier import AppliedWorld, ApplierOptions, build
from core.broker import EmbeddedBroker, ensure_topics
from core.db import create_schema, dead_letters, event_key_sequences, event_outbox, event_requests, make_engine
from core.events import Envelope
from core.pgcluster import PgCluster
from core.procs import Service, wait_until
from core.settings import Settings
from sandbox.run import start_legacy
from tests.builders import shipped_rules_text

CAPABILITY = "profile.update"
_topics = itertools.count(1)
_customers = itertools.count(1)  # the module's legacy has 100 customers; each test takes its own


@pytest.fixture(scope="module", name="broker")
def broker_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    started = EmbeddedBroker(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log").start()
    yield started
    started.kill()  # memory only, nothing to keep; SIGTERM waits ~5 s while clients are still connected


@pytest.fixture(scope="module", name="legacy_db")
def legacy_db_fixture(pg_cluster: PgCluster) -> str:
    return pg_cluster.create_database(f"applier_legacy_{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module", name="legacy")
def legacy_fixture(legacy_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = start_legacy(legacy_db, tmp_path_factory.mktemp("legacy"), customers=100, workers=2, threads=16)
    yield service
    service.stop()


def rules_text(topic: str, max_attempts: int = 20, backoff_ms: int = 50) -> str:
    """The shipped rules with this test's topic, quick retries and a breaker that recovers within a second."""
    events = f"events: {{topic: {topic}, partitions: 3, key_by: customer_id, max_attempts: {max_attempts}, "
    events += f"retry_backoff_ms: {backoff_ms}}}"
    text = re.sub(r"events: \{topic: strangler\.profile-updates[^}]*\}", events, shipped_rules_text())
    assert topic in text
    return text.replace("breaker: {fail_max: 5, reset_s: 5}", "breaker: {fail_max: 3, reset_s: 1}")


class World:
    """One test's control plane, topic and legacy customers, with helpers to accept, publish and inspect updates."""

    def __init__(self, control_url: str, legacy: Service, legacy_db: str, broker: EmbeddedBroker, tmp: Path) -> None:
        self.control_url, self.legacy, self.broker = control_url, legacy, broker
        self.topic = f"applier-test-{next(_topics)}"
        self.rules_path = tmp / "routing_rules.yaml"
        self.configure()
        self.engine = make_engine(control_url, pool_size=4)
        create_schema(self.engine)
        self.legacy_engine = make_engine(legacy_db, pool_size=2)
        self.producer = Producer({"bootstrap.servers": broker.bootstrap, "log_level": 0})
        ensure_topics(broker.bootstrap, {self.topic: 3, f"{self.topic}.dlq": 3})

    def configure(self, max_attempts: int = 20, backoff_ms: int = 50) -> None:
        self.rules_path.write_text(rules_text(self.topic, max_attempts, backoff_ms))

    def settings(self) -> Settings:
        return Settings(
            database_url=self.control_url, rules_path=self.rules_path, upstream_urls={"legacy": self.legacy.url},
            kafka_bootstrap=self.broker.bootstrap,
        )  # fmt: skip

    def env(self) -> dict[str, str]:
        return {
            "STRANGLER_DATABASE_URL": self.control_url, "STRANGLER_RULES": str(self.rules_path),
            "STRANGLER_UPSTREAM_LEGACY_URL": self.legacy.url, "STRANGLER_KAFKA_BOOTSTRAP": self.broker.bootstrap,
        }  # fmt: skip

    @staticmethod
    def customers(count: int) -> list[int]:
        picked = [next(_customers) for _ in range(count)]
        assert picked[-1] <= 100, "the module's legacy has 100 customers"
        return picked

    def accept(self, customer: int | str, body: dict[str, Any]) -> Envelope:
        """Write an accepted update as the facade does (key sequence, request, outbox row) and return its envelope."""
        key, event_id = str(customer), uuid.uuid4().hex
        with self.engine.begin() as conn:
            sequence = conn.execute(
                sa.dialects.postgresql.insert(event_key_sequences)
                .values(capability=CAPABILITY, key=key, accepted=1)
                .on_conflict_do_update(
                    index_elements=["capability", "key"], set_={"accepted": event_key_sequences.c.accepted + 1}
                )
                .returning(event_key_sequences.c.accepted)
            ).scalar_one()
            envelope = Envelope(
                id=event_id, type=f"{CAPABILITY}.requested", capability=CAPABILITY, key=key,
                occurred_at=datetime.now(UTC).isoformat(), request_id=f"req_{event_id}", sequence=sequence,
                payload={"path_params": {"customer_id": key}, "body": body, "client_id": "portal"},
            )  # fmt: skip
            conn.execute(
                event_requests.insert().values(
                    request_id=envelope.request_id, event_id=event_id, client_id="portal", capability=CAPABILITY,
                    key=key, sequence=sequence, state="accepted",
                )
            )  # fmt: skip
            conn.execute(
                event_outbox.insert().values(event_id=event_id, topic=self.topic, key=key, value=envelope.to_json())
            )
        return envelope

    def publish(self, *envelopes: Envelope, delivered: Callable[[int, int], None] | None = None) -> None:
        """Produce the envelopes in this order; `delivered(partition, offset)` hears of each acknowledged one."""

        def report(err: Any, message: Any) -> None:
            assert err is None, err
            if delivered is not None:
                delivered(message.partition(), message.offset())

        for envelope in envelopes:
            self.producer.produce(self.topic, envelope.to_json(), envelope.key, on_delivery=report)
        assert self.producer.flush(10) == 0

    def publish_raw(self, value: bytes, key: bytes | None = None) -> None:
        self.producer.produce(self.topic, value, key)
        assert self.producer.flush(10) == 0

    def requests(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return {row.event_id: row for row in conn.execute(sa.select(event_requests))}

    def state(self, envelope: Envelope) -> Any:
        return self.requests()[envelope.id]

    def settled(self, envelopes: list[Envelope], states: tuple[str, ...] = ("applied",)) -> bool:
        rows = self.requests()
        return all(rows[e.id].state in states for e in envelopes)

    def dead_letters(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(dead_letters).order_by(dead_letters.c.id)))

    def legacy_customer(self, customer: int | str) -> dict[str, Any]:
        answer = requests.get(f"{self.legacy.url}/CBS/CUST/INQ", params={"CUSTNO": f"{int(customer):010d}"}, timeout=5)
        body: dict[str, Any] = answer.json()
        return body

    def legacy_log(self, customers: list[int]) -> dict[str, str]:
        """Return legacy's update log {UPDREF: CUSTNO} of these customers (one row per applied update reference)."""
        query = sa.text("SELECT updref, custno FROM cbs.profupd_log WHERE custno = ANY(:custnos)")
        with self.legacy_engine.connect() as conn:
            rows = conn.execute(query, {"custnos": [f"{c:010d}" for c in customers]}).all()
        return {updref: custno for updref, custno in rows}

    def faults(self, **settings: Any) -> None:
        answer = requests.put(f"{self.legacy.url}/__admin/faults", json=settings, timeout=5)
        assert answer.status_code == 200, answer.text

    def dlq_records(self, count: int) -> list[Any]:
        consumer = Consumer({"bootstrap.servers": self.broker.bootstrap, "group.id": f"dlq-{uuid.uuid4().hex}",
                             "auto.offset.reset": "earliest", "session.timeout.ms": 3000})  # fmt: skip
        consumer.subscribe([f"{self.topic}.dlq"])
        found: list[Any] = []
        try:

            def enough() -> bool:
                found.extend(m for m in consumer.consume(10, 0.2) if not m.error())
                return len(found) >= count

            wait_until(enough, 20, what=f"{count} dead letters on the topic")
        finally:
            consumer.close()
        return found

    def close(self) -> None:
        requests.delete(f"{self.legacy.url}/__admin/faults", timeout=5)
        self.engine.dispose()
        self.legacy_engine.dispose()


@pytest.fixture(name="world")
def world_fixture(
    new_database: Callable[[str], str], legacy: Service, legacy_db: str, broker: EmbeddedBroker, tmp_path: Path
) -> Iterator[World]:
    made = World(new_database("applier"), legacy, legacy_db, broker, tmp_path)
    yield made
    made.close()


@contextmanager
def running(
    world: World, workers: int = 4, on_applied: Callable[[Envelope], None] | None = None
) -> Iterator[AppliedWorld]:
    """Run an applier in a thread of this process until the block ends; yields once it owns its partitions."""
    options = ApplierOptions(group=f"g-{world.topic}", workers=workers, session_timeout_ms=3000, commit_interval_s=0.1)
    built = build(world.settings(), options, on_applied=on_applied)
    stop, failures = threading.Event(), []

    def run() -> None:
        try:
            built.applier.run(stop)
        except BaseException as exc:  # surfaced by the test, not lost in a thread
            failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: built.applier.assigned.is_set() or bool(failures), 30, what="partitions assigned")
        assert not failures, failures
        yield built
    finally:
        stop.set()
        thread.join(30)
        built.close()
    assert not thread.is_alive() and not failures, failures


def metric(built: AppliedWorld, name: str, **labels: str) -> float:
    return built.applier.metrics.registry.get_sample_value(name, labels) or 0.0


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
