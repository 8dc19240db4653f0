"""The outbox relay against real PostgreSQL and the real embedded broker: order, acknowledgement, crashes, standbys."""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from cli.events import relay as relay_command
from connectors.applier_store import PostgresApplierStore
from connectors.event_retention import Retention
from connectors.relay import OutboxRelay
from core.broker import EmbeddedBroker, ensure_topics
from core.db import event_outbox, event_publications, event_requests, make_engine
from core.events import Envelope
from core.migrate import create_schema
from core.outbox import unpublished
from core.pgcluster import free_port
from core.procs import wait_until
from tests.builders import REPO, SHIPPED_RULES

CAPABILITY = "profile.update"
PARTITIONS = 6
_names = itertools.count(1)


# --- builders and probes --------------------------------------------------------------------------------------------


def accept(engine: sa.Engine, topic: str, keys: int, per_key: int, first_sequence: int = 1) -> list[Envelope]:
    """Write accepted requests and their outbox rows as the facade does, keys interleaved, each key in sequence."""
    prefix = f"c{next(_names)}"
    envelopes = [
        Envelope(id=f"evt_{uuid.uuid4().hex}", type=CAPABILITY, capability=CAPABILITY, key=f"{prefix}-{k}",
                 occurred_at="2026-01-01T00:00:00Z", request_id=f"req_{uuid.uuid4().hex}", sequence=seq,
                 payload={"path_params": {"customer_id": f"{prefix}-{k}"}, "body": {"email": f"{seq}@x.test"}})
        for seq in range(first_sequence, first_sequence + per_key)
        for k in range(keys)
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(
            event_requests.insert(),
            [
                dict(request_id=e.request_id, event_id=e.id, client_id="portal", capability=CAPABILITY, key=e.key,
                     sequence=e.sequence, state="accepted")
                for e in envelopes
            ],
        )  # fmt: skip
        # One transaction, ids in list order: each key's rows are in sequence order, as the facade's key lock ensures.
        conn.execute(
            event_outbox.insert().returning(event_outbox.c.id, sort_by_parameter_order=True),
            [dict(event_id=e.id, topic=topic, key=e.key, value=e.to_json()) for e in envelopes],
        )
    return envelopes


def count(engine: sa.Engine, where: Any, table: sa.Table = event_outbox) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar_one())


def published(engine: sa.Engine) -> int:
    """Return how many outbox rows the relay's last publication covers."""
    return count(engine, ~unpublished())


def queued(engine: sa.Engine) -> set[str]:
    """Return the event ids whose outbox rows lie past the relay's last publication."""
    with engine.connect() as conn:
        return set(conn.execute(sa.select(event_outbox.c.event_id).where(unpublished())).scalars())


def publications(engine: sa.Engine) -> list[int]:
    """Return the row counts of the relay's publications, in order."""
    with engine.connect() as conn:
        return list(conn.execute(sa.select(event_publications.c.rows).order_by(event_publications.c.id)).scalars())


def states(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(event_requests.c.event_id, event_requests.c.state)).all())


def set_state(engine: sa.Engine, event_id: str, state: str) -> None:
    with engine.begin() as conn:
        conn.execute(event_requests.update().where(event_requests.c.event_id == event_id).values(state=state))


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: str
    event_id: str
    envelope: Envelope


def consume(
    bootstrap: str, topic: str, done: Callable[[list[Record]], bool], timeout: float = 30, group: bool = False
) -> list[Record]:
    """Read the topic from the start until `done(records)`, as a fresh consumer group or by direct assignment."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4().hex}", "session.timeout.ms": 6000,
        "auto.offset.reset": "earliest", "enable.auto.commit": False, "log_level": 0,
    })  # fmt: skip
    if group:
        consumer.subscribe([topic])
    else:  # no group join to wait for (half of session.timeout.ms on this broker)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    records: list[Record] = []

    def more() -> bool:
        for msg in consumer.consume(2000, timeout=0.2):
            if msg.error() is None:
                envelope = Envelope.from_json(msg.value())
                records.append(Record(msg.partition(), msg.offset(), msg.key().decode(), envelope.id, envelope))
        return done(records)

    try:
        wait_until(more, timeout, interval=0, what=f"records on {topic} (have {len(records)})")
    finally:
        consumer.close()
    return records


def covers(event_ids: set[str]) -> Callable[[list[Record]], bool]:
    return lambda records: event_ids <= {r.event_id for r in records}


def sample(relay: OutboxRelay, name: str) -> float:
    value = relay.registry.get_sample_value(name)
    assert value is not None, name
    return value


# --- fixtures -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One embedded broker for the tests that never restart it."""
    with EmbeddedBroker(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log") as broker:
        yield broker


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker this test may kill and restart."""
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        yield broker


@pytest.fixture
def control(new_database: Callable[[str], str]) -> Iterator[sa.Engine]:
    engine = make_engine(new_database("relay"), pool_size=4)
    create_schema(engine)
    yield engine
    engine.dispose()


def new_topic(bootstrap: str) -> str:
    name = f"relay-test-{next(_names)}-{uuid.uuid4().hex[:6]}"
    ensure_topics(bootstrap, {name: PARTITIONS})
    return name


@pytest.fixture
def relays() -> Iterator[list[OutboxRelay]]:
    made: list[OutboxRelay] = []
    yield made
    for relay in made:
        relay.close()


# --- in-process relay -----------------------------------------------------------------------------------------------


def test_publishes_every_row_keyed_in_sequence_order_and_marks_only_those(
    control: sa.Engine, kafka: EmbeddedBroker, relays: list[OutboxRelay]
) -> None:
    topic = new_topic(kafka.bootstrap)
    envelopes = accept(control, topic, keys=50, per_key=20)
    set_state(control, envelopes[0].id, "applied")  # settled already (an earlier delivery): never downgraded
    set_state(control, envelopes[1].id, "failed")
    relays.append(relay := OutboxRelay(control, kafka.bootstrap, batch_size=300))
    assert sample(relay, "strangler_outbox_backlog") == 1000

    rounds = [relay.publish_batch() for _ in range(5)]

    assert rounds == [300, 300, 300, 100, 0]
    records = consume(kafka.bootstrap, topic, lambda got: len(got) >= 1000, group=True)
    assert len(records) == 1000
    by_key: dict[str, list[Record]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        assert record.key == record.envelope.key
        by_key.setdefault(record.key, []).append(record)
    assert len(by_key) == 50
    for key, seen in by_key.items():
        assert len({r.partition for r in seen}) == 1, key
        assert [r.envelope.sequence for r in seen] == list(range(1, 21)), key
    assert count(control, sa.true()) == 1000 == published(control)  # no copies: each row published once
    assert queued(control) == set()
    assert publications(control) == [300, 300, 300, 100]  # one record per batch, not one write per row
    got = states(control)  # the relay never writes a request: "published" is read from the outbox row
    assert got.pop(envelopes[0].id) == "applied" and got.pop(envelopes[1].id) == "failed"
    assert set(got.values()) == {"accepted"}
    assert sample(relay, "strangler_relay_published_total") == 1000
    assert sample(relay, "strangler_outbox_backlog") == 0


def test_a_pass_over_less_than_a_batch_publishes_and_marks_it_in_line_and_in_order(
    control: sa.Engine, kafka: EmbeddedBroker, relays: list[OutboxRelay]
) -> None:
    topic = new_topic(kafka.bootstrap)
    envelopes = accept(control, topic, keys=5, per_key=4)
    relays.append(relay := OutboxRelay(control, kafka.bootstrap, batch_size=500))

    result = relay.publish_pass(threading.Event())

    assert (result.read, result.marked, result.failed) == (20, 20, False)
    assert published(control) == 20 and queued(control) == set()
    assert relay.publish_pass(threading.Event()).read == 0  # nothing left: an idle pass
    records = consume(kafka.bootstrap, topic, lambda got: len(got) >= 20, group=True)
    by_key: dict[str, list[int]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(record.key, []).append(record.envelope.sequence)
    assert by_key == {e.key: [1, 2, 3, 4] for e in envelopes}


def test_a_row_of_a_transaction_still_running_holds_back_later_rows_and_is_never_skipped(
    control: sa.Engine, kafka: EmbeddedBroker, relays: list[OutboxRelay]
) -> None:
    """A transaction that began writing first may commit last: its row sits behind rows already visible."""
    topic = new_topic(kafka.bootstrap)
    relays.append(relay := OutboxRelay(control, kafka.bootstrap))
    slow = control.connect()
    slow_tx = slow.begin()
    [early] = accept_on(slow, topic, "slow-key")  # written (transaction id taken), not committed yet
    with control.begin() as conn:
        [late] = accept_on(conn, topic, "quick-key")  # a younger transaction, committed at once

    assert relay.publish_batch() == 0  # the later row waits: publishing it would move the position past `early`

    slow_tx.commit()
    slow.close()
    assert relay.publish_batch() == 2
    assert queued(control) == set() and publications(control) == [2]
    records = consume(kafka.bootstrap, topic, covers({early.id, late.id}))
    assert {r.event_id for r in records} == {early.id, late.id}


def accept_on(conn: sa.Connection, topic: str, key: str) -> list[Envelope]:
    """Write one accepted update's request and outbox row on `conn`, inside whatever transaction it has."""
    envelope = Envelope(id=f"evt_{uuid.uuid4().hex}", type=CAPABILITY, capability=CAPABILITY, key=key,
                        occurred_at="2026-01-01T00:00:00Z", request_id=f"req_{uuid.uuid4().hex}", sequence=1,
                        payload={"path_params": {"customer_id": key}, "body": {"email": "x@x.test"}})  # fmt: skip
    conn.execute(event_requests.insert().values(
        request_id=envelope.request_id, event_id=envelope.id, client_id="portal", capability=CAPABILITY, key=key,
        sequence=1, state="accepted",
    ))  # fmt: skip
    conn.execute(event_outbox.insert().values(event_id=envelope.id, topic=topic, key=key, value=envelope.to_json()))
    return [envelope]


def test_nothing_is_marked_published_while_the_broker_is_down(
    control: sa.Engine, own_kafka: EmbeddedBroker, relays: list[OutboxRelay]
) -> None:
    topic = new_topic(own_kafka.bootstrap)
    envelopes = accept(control, topic, keys=10, per_key=10)
    relays.append(relay := OutboxRelay(control, own_kafka.bootstrap, flush_timeout_s=1.0))
    own_kafka.kill()

    assert relay.publish_batch() == 0

    assert published(control) == 0 and len(queued(control)) == 100
    assert sample(relay, "strangler_relay_unacknowledged_total") == 100
    own_kafka.start()
    ensure_topics(own_kafka.bootstrap, {topic: PARTITIONS})
    # A freshly restarted broker may not acknowledge a whole batch within the flush timeout: publish until it has.
    wait_until(lambda: relay.publish_batch() >= 0 and published(control) == 100, 30, what="all rows published")
    assert len(queued(control)) == 0
    consume(own_kafka.bootstrap, topic, covers({e.id for e in envelopes}))


def test_rows_that_time_out_empty_the_producer_yet_are_never_marked_published(
    control: sa.Engine, own_kafka: EmbeddedBroker, relays: list[OutboxRelay], caplog: pytest.LogCaptureFixture
) -> None:
    # The producer reports failures only: a timed-out row leaves its queue like an acknowledged one, and only its
    # failure report tells them apart. The flush timeout is longer than the message timeout, so the queue drains.
    topic = new_topic(own_kafka.bootstrap)
    accept(control, topic, keys=5, per_key=4)
    config = {"bootstrap.servers": own_kafka.bootstrap, "message.timeout.ms": 3000}
    relays.append(relay := OutboxRelay(control, config, flush_timeout_s=10.0))
    # A producer with its id, and a first publication to stay behind (a loaded machine may need a second try: a new
    # producer's first rows wait for its id and the topic's metadata).
    wait_until(lambda: relay.publish_batch() >= 0 and published(control) == 20, 60, what="the first rows published")
    own_kafka.kill()
    accept(control, topic, keys=5, per_key=4, first_sequence=5)

    with caplog.at_level(logging.WARNING, logger="strangler.relay"):
        assert relay.publish_batch() == 0

    assert published(control) == 20 and len(queued(control)) == 20
    assert sample(relay, "strangler_relay_unacknowledged_total") == 20
    assert "20 rows not acknowledged (Local: Message timed out)" in caplog.text  # reported, not merely silent


def test_the_loop_waits_out_a_broker_restart_and_recreates_its_topics(
    control: sa.Engine, own_kafka: EmbeddedBroker, relays: list[OutboxRelay]
) -> None:
    topic = f"relay-restart-{uuid.uuid4().hex[:6]}"
    relay = OutboxRelay(
        control, own_kafka.bootstrap, batch_size=50, flush_timeout_s=3.0, topics={topic: PARTITIONS},
        idle_wait_s=0.02, backoff=lambda failures: 0.1,
    )  # fmt: skip
    relays.append(relay)
    stop = threading.Event()
    loop = threading.Thread(target=relay.run, args=(stop,))
    loop.start()
    try:
        accept(control, topic, keys=10, per_key=10)
        wait_until(lambda: published(control) == 100, 20, what="first rows published")
        own_kafka.kill()
        later = accept(control, topic, keys=10, per_key=10, first_sequence=11)
        wait_until(lambda: sample(relay, "strangler_relay_unacknowledged_total") > 0, 20, what="a failed round")
        assert published(control) == 100  # nothing of the second lot was marked while the broker was away
        own_kafka.start()  # empty: no topics at all
        wait_until(lambda: published(control) == 200, 20, what="the rest published after the restart")
    finally:
        stop.set()
        loop.join(10)
    assert not loop.is_alive()
    topics = AdminClient({"bootstrap.servers": own_kafka.bootstrap}).list_topics(timeout=5).topics
    assert len(topics[topic].partitions) == PARTITIONS  # recreated as configured, not auto-created by a produce
    consume(own_kafka.bootstrap, topic, covers({e.id for e in later}))


def test_the_active_relay_prunes_applied_events_past_their_retention_between_passes(
    control: sa.Engine, kafka: EmbeddedBroker, relays: list[OutboxRelay]
) -> None:
    topic = new_topic(kafka.bootstrap)
    envelopes = accept(control, topic, keys=3, per_key=2)
    first, second = envelopes[:3], envelopes[3:]  # each key's first and second update
    retention = Retention(14 * 86400.0, batch_size=2)
    relays.append(relay := OutboxRelay(control, kafka.bootstrap, idle_wait_s=0.02, retention=retention))
    assert relay.publish_batch() == 6
    store = PostgresApplierStore(control)
    for envelope in envelopes:
        assert store.record_applied(envelope) is not None
    past = sa.func.now() - sa.func.make_interval(0, 0, 0, 15)
    with control.begin() as conn:  # the first updates were applied 15 days ago
        conn.execute(event_requests.update().where(event_requests.c.event_id.in_([e.id for e in first])).values(
            accepted_at=past, applied_at=past))  # fmt: skip
        conn.execute(
            event_outbox.update().where(event_outbox.c.event_id.in_([e.id for e in first])).values(created_at=past)
        )
    stop = threading.Event()
    loop = threading.Thread(target=relay.run, args=(stop,))
    loop.start()
    try:
        wait_until(lambda: sample(relay, "strangler_events_pruned_total") == 3, 10, what="the first updates pruned")
    finally:
        stop.set()
        loop.join(10)
    assert not loop.is_alive()
    assert set(states(control)) == {e.id for e in second}
    assert count(control, sa.true()) == 3


def test_a_relay_that_becomes_active_with_nothing_to_send_gets_its_producer_id_at_once(
    control: sa.Engine, kafka: EmbeddedBroker, relays: list[OutboxRelay]
) -> None:
    """A new idempotent producer gets its producer id ~0.5 s after it starts: an idle relay gets it before the first
    update is accepted, not while that update waits (librdkafka's statistics tell the producer's id state)."""
    states: list[str] = []

    def stats(report: str) -> None:
        states.append(json.loads(report).get("eos", {}).get("idemp_state", "-"))

    config = {"bootstrap.servers": kafka.bootstrap, "statistics.interval.ms": 100, "stats_cb": stats}
    relays.append(relay := OutboxRelay(control, config, idle_wait_s=0.02))
    stop = threading.Event()
    loop = threading.Thread(target=relay.run, args=(stop,))
    loop.start()
    try:
        wait_until(lambda: "Assigned" in states, 10, what="the idle relay's producer to hold its producer id")
        assert publications(control) == [], "nothing was ever published"
    finally:
        stop.set()
        loop.join(10)
    assert not loop.is_alive()


def test_the_watchdog_requeues_unapplied_events_after_the_deadline_and_leaves_settled_ones(
    control: sa.Engine, kafka: EmbeddedBroker, relays: list[OutboxRelay]
) -> None:
    topic = new_topic(kafka.bootstrap)
    a1, b1, a2, b2, a3, b3 = accept(control, topic, keys=2, per_key=3)
    relays.append(relay := OutboxRelay(control, kafka.bootstrap, republish_after_s=0.3))
    assert relay.publish_batch() == 6
    set_state(control, a1.id, "applied")
    set_state(control, b1.id, "applied")
    set_state(control, b2.id, "applied")
    set_state(control, b3.id, "failed")
    relays.append(patient := OutboxRelay(control, kafka.bootstrap, republish_after_s=100, lock_key=1))
    assert patient.requeue_stale() == 0  # nothing is late yet by its deadline

    wait_until(lambda: relay.requeue_stale() > 0, 10, what="the watchdog to find late events")

    assert queued(control) == {a2.id, a3.id}  # copies, after everything else
    assert sample(relay, "strangler_relay_republished_total") == 2
    assert relay.requeue_stale() == 0  # their copies wait for the relay: not copied twice
    assert relay.publish_batch() == 2
    assert count(control, event_outbox.c.event_id.in_([a2.id, a3.id])) == 4
    assert queued(control) == set()
    assert states(control)[a2.id] == "accepted" and states(control)[b3.id] == "failed"
    # Published twice, an event is late only after twice the deadline: a stuck key is not flooded with copies.
    age_publications(control, seconds=150)
    assert patient.requeue_stale() == 0
    age_publications(control, seconds=250)
    assert patient.requeue_stale() == 2
    # The second copy replaced the first: each event keeps the facade's row and its latest copy, not one per round.
    with control.connect() as conn:
        rows = conn.execute(
            sa.select(event_outbox.c.event_id, event_outbox.c.generation)
            .where(event_outbox.c.event_id.in_([a2.id, a3.id]))
            .order_by(event_outbox.c.id)
        ).all()
    assert sorted(rows) == sorted([(a2.id, 0), (a3.id, 0), (a2.id, 2), (a3.id, 2)])


def age_publications(engine: sa.Engine, seconds: float) -> None:
    """Pretend every publication so far (the latest: the copies') happened `seconds` ago."""
    with engine.begin() as conn:
        conn.execute(event_publications.update().values(at=sa.func.now() - sa.text(f"interval '{seconds} seconds'")))


# --- relay processes ------------------------------------------------------------------------------------------------


class RelayProcess:
    """`strangler relay` as a real process (its own process group), configured by environment like production."""

    def __init__(self, database_url: str, bootstrap: str, log: Path, metrics_port: int | None = None) -> None:
        env = {**os.environ, "STRANGLER_DATABASE_URL": database_url, "STRANGLER_KAFKA_BOOTSTRAP": bootstrap,
               "STRANGLER_RULES": str(SHIPPED_RULES)}  # fmt: skip
        argv = [sys.executable, "-c", "from cli.events import relay; relay()", "--batch-size", "20"]
        if metrics_port is not None:
            argv += ["--metrics-port", str(metrics_port), "--metrics-addr", "127.0.0.1"]
        self.metrics_port = metrics_port
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=out, start_new_session=True)

    def signal(self, sig: int) -> int:
        os.killpg(self.proc.pid, sig)
        return self.proc.wait(15)

    def metric(self, name: str) -> float | None:
        try:
            text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=1).text
        except requests.RequestException:
            return None
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name:
                    return float(s.value)
        return None


@pytest.fixture
def processes() -> Iterator[list[RelayProcess]]:
    started: list[RelayProcess] = []
    yield started
    for process in started:
        if process.proc.poll() is None:
            process.signal(signal.SIGKILL)


def test_a_relay_killed_again_and_again_publishes_every_row_and_marks_only_acknowledged_ones(
    control: sa.Engine, kafka: EmbeddedBroker, processes: list[RelayProcess], tmp_path: Path
) -> None:
    topic = new_topic(kafka.bootstrap)
    url = control.url.render_as_string(hide_password=False)
    accepted: list[Envelope] = []
    killed_mid_stream = 0
    for round_ in range(5):
        accepted += accept(control, topic, keys=50, per_key=30, first_sequence=1)
        before = published(control)
        processes.append(process := RelayProcess(url, kafka.bootstrap, tmp_path / "relay.log"))
        wait_until(lambda b=before: published(control) > b, 30, interval=0.01, what=f"progress in round {round_}")
        assert process.signal(signal.SIGKILL) == -signal.SIGKILL
        killed_mid_stream += published(control) < len(accepted)
    assert killed_mid_stream >= 3, "the kills should land while rows are still waiting"

    processes.append(last := RelayProcess(url, kafka.bootstrap, tmp_path / "relay.log"))
    wait_until(lambda: published(control) == len(accepted), 60, what="every row published")
    assert last.signal(signal.SIGTERM) == 0  # a clean stop on SIGTERM
    # Every row marked published is on the topic: nothing was marked before the broker acknowledged it.
    consume(kafka.bootstrap, topic, covers({e.id for e in accepted}))
    assert queued(control) == set() and set(states(control).values()) == {"accepted"}


def test_a_second_relay_stands_by_and_takes_over_when_the_first_dies(
    control: sa.Engine, kafka: EmbeddedBroker, processes: list[RelayProcess], tmp_path: Path
) -> None:
    topic = new_topic(kafka.bootstrap)
    url = control.url.render_as_string(hide_password=False)
    for name in ("a", "b"):
        processes.append(RelayProcess(url, kafka.bootstrap, tmp_path / f"relay-{name}.log", free_port()))

    def roles() -> list[float | None]:
        return [p.metric("strangler_relay_active") for p in processes]

    wait_until(lambda: sorted(roles(), key=str) == [0.0, 1.0], 30, what="one active relay and one standby")
    active, standby = sorted(processes, key=lambda p: -(p.metric("strangler_relay_active") or 0))
    first = accept(control, topic, keys=10, per_key=10)
    wait_until(lambda: published(control) == 100, 20, what="the active relay to publish")
    assert standby.metric("strangler_relay_published_total") == 0.0
    assert standby.metric("strangler_relay_active") == 0.0

    assert active.signal(signal.SIGKILL) == -signal.SIGKILL
    later = accept(control, topic, keys=10, per_key=10, first_sequence=11)

    wait_until(lambda: published(control) == 200, 30, what="the standby to take over")
    assert standby.metric("strangler_relay_active") == 1.0
    assert standby.metric("strangler_relay_published_total") == 100.0
    consume(kafka.bootstrap, topic, covers({e.id for e in first + later}))


def test_the_relay_command_refuses_to_start_without_a_kafka_bootstrap(control: sa.Engine) -> None:
    env = {"STRANGLER_DATABASE_URL": control.url.render_as_string(hide_password=False),
           "STRANGLER_RULES": str(SHIPPED_RULES), "STRANGLER_KAFKA_BOOTSTRAP": None}  # fmt: skip
    result = CliRunner().invoke(relay_command, [], env=env)
    assert result.exit_code != 0
    assert "STRANGLER_KAFKA_BOOTSTRAP is not set" in result.output
