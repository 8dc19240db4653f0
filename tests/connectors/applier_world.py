"""The applier tests' world: a control plane, a topic and legacy customers per test, with helpers to accept, publish
and inspect updates, and an applier run in a thread. Its fixtures live in this directory's conftest."""

from __future__ import annotations

import itertools
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from confluent_kafka import Consumer, Producer

from connectors.applier import AppliedWorld, ApplierOptions, build
from core.broker import EmbeddedBroker, ensure_topics
from core.db import dead_letters, event_key_sequences, event_outbox, event_requests, make_engine
from core.events import Envelope
from core.migrate import create_schema
from core.procs import Service, wait_until
from core.settings import Settings
from tests.builders import shipped_rules_text

CAPABILITY = "profile.update"
_topics = itertools.count(1)
_customers = itertools.count(1)  # the module's legacy has 100 customers; each test takes its own


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
