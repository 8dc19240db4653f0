"""The event applier: a consumer group that applies accepted updates to the legacy API in key order, once in effect.

The poll thread consumes, reads the states of a poll's records in one statement, queues each record under its key
and commits offsets; a small pool of workers settles the queues, one key per worker at a time, so a key whose head
keeps failing waits out its backoff while others flow.
A record is settled when its outcome and the key's checkpoint are committed in the control plane (one transaction);
only then does its offset become committable, and a partition is committed up to its lowest unsettled offset. A crash
in between redelivers the record; legacy dedups the event id (its update reference), so a repeat has no effect.
Run it with `strangler apply-events` or `python -m connectors.applier` (configured by STRANGLER_* variables).
"""

from __future__ import annotations

import argparse
import functools
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import start_http_server

from connectors.adapters import adapter_registry
from connectors.applier_call import UPSTREAM, EventCaller, events_capabilities
from connectors.applier_metrics import ApplierMetrics
from connectors.applier_process import EventProcessor, KafkaDeadLetterSink, Record, parse_record
from connectors.applier_sched import KeyQueues, OffsetTracker, Partition
from connectors.applier_store import PostgresApplierStore
from connectors.upstream import UpstreamClient
from connectors.wiring import upstream_config
from core.broker import BrokerError, ensure_topics
from core.events import Envelope
from core.migrate import create_schema
from core.rules import CapabilitySpec, load_rules
from core.settings import Settings, SettingsError

log = logging.getLogger("strangler.applier")

ITEMS_PER_TURN = 50  # a key hands its worker back after this many records, so one busy key cannot starve the rest


@dataclass(frozen=True)
class ApplierOptions:
    """How one applier process consumes: its group, its worker pool and its pacing."""

    group: str = "strangler-applier"
    workers: int = 16  # each worker waits on legacy and the database in turn; more keys in flight, more throughput
    session_timeout_ms: int = 10_000
    commit_interval_s: float = 0.5
    max_buffered: int = 20_000  # stop fetching while this many records wait in the key queues
    poll_timeout_s: float = 0.1
    fetch_wait_ms: int = 20
    shutdown_timeout_s: float = 30.0


class EventApplier:
    """Consumes the topics of the events capabilities and settles every record through an EventProcessor."""

    def __init__(
        self,
        processor: EventProcessor,
        caps: Mapping[str, CapabilitySpec],
        bootstrap: str,
        options: ApplierOptions = ApplierOptions(),
        metrics: ApplierMetrics | None = None,
    ) -> None:
        self.processor, self.caps, self.bootstrap, self.options = processor, caps, bootstrap, options
        self.provision = topics_for_caps(caps)
        self.metrics = metrics or processor.metrics
        self.topics = sorted({c.events.topic for c in caps.values() if c.events})
        self.queues: KeyQueues[tuple[str, str], Record] = KeyQueues()
        self.tracker = OffsetTracker()
        self.metrics.watch(self.tracker.lag, self.queues.keys_in_flight, self.queues.items, self.tracker.owned)
        self.assigned = threading.Event()  # set once the group gave this consumer its partitions
        self._consumer: Consumer | None = None
        self._paused = False

    def run(self, stop: threading.Event) -> None:
        """Consume and apply until `stop` is set, then settle what is in hand, commit it and leave the group."""
        self._ensure_topics(stop)
        if stop.is_set():
            return
        consumer = self._consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.options.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": self.options.session_timeout_ms,
                "heartbeat.interval.ms": max(100, self.options.session_timeout_ms // 6),
                # A broker may hold a fetch for this long before answering, even once records arrived (the embedded
                # one does): at the default 500 ms it alone cost most of the accept → applied time at 200/s.
                "fetch.wait.max.ms": self.options.fetch_wait_ms,
                # A restarted embedded broker has no topics until the relay recreates them; a group that rebalanced
                # meanwhile is assigned nothing until the next metadata refresh (5 minutes by default).
                "topic.metadata.refresh.interval.ms": 5000,
                "logger": log,
            }
        )
        consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
        stop_workers = threading.Event()
        workers = [
            threading.Thread(target=self._work, args=(stop_workers,), name=f"applier-{i}", daemon=True)
            for i in range(self.options.workers)
        ]
        for worker in workers:
            worker.start()
        log.info("applier consuming %s as group %s", ", ".join(self.topics), self.options.group)
        next_commit = time.monotonic() + self.options.commit_interval_s
        try:
            while not stop.is_set():
                self._throttle(consumer)
                # Wait for the first record only, then take what else is already fetched: consume(500, timeout) would
                # hold every record until 500 arrived or the timeout passed (~50 ms each at 200 updates/s).
                first = consumer.poll(self.options.poll_timeout_s)
                if first is not None:
                    self._accept([first, *consumer.consume(num_messages=500, timeout=0)])
                if time.monotonic() >= next_commit:
                    self._commit(consumer)
                    next_commit = time.monotonic() + self.options.commit_interval_s
        finally:
            stop_workers.set()
            self.queues.close()
            deadline = time.monotonic() + self.options.shutdown_timeout_s
            for worker in workers:
                worker.join(max(0.0, deadline - time.monotonic()))
            self._commit(consumer)
            consumer.close()
            self._consumer = None
            log.info("applier stopped")

    # --- the poll thread --------------------------------------------------------------------------------------------

    def _ensure_topics(self, stop: threading.Event) -> None:
        wait = 0.2
        while not stop.is_set():
            try:
                ensure_topics(self.bootstrap, self.provision, timeout=5.0)
                return
            except (BrokerError, KafkaException) as exc:
                log.warning("broker not ready (%s); retrying in %.1fs", exc, wait)
                stop.wait(wait)
                wait = min(5.0, wait * 2)

    def _accept(self, messages: list[Message]) -> None:
        records = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", error.str())
                continue
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            assert topic is not None and partition is not None and offset is not None
            if not self.tracker.owns((topic, partition)):
                continue  # fetched before a revoke: its new owner delivers it again
            self.tracker.consumed((topic, partition), offset)
            key = message.key()
            key = key.encode() if isinstance(key, str) else key
            records.append(parse_record(topic, partition, offset, key, message.value(), self.caps))
        # One statement reads the states of all of them, instead of one per record on the workers' path.
        for record in self.processor.prefetch(records):
            self.queues.put(record.queue_key, record)

    def _throttle(self, consumer: Consumer) -> None:
        buffered = self.queues.items()
        if buffered >= self.options.max_buffered:
            consumer.pause(consumer.assignment())  # repeated each round: covers partitions assigned meanwhile
            self._paused = True
        elif self._paused and buffered < self.options.max_buffered // 2:
            consumer.resume(consumer.assignment())
            self._paused = False

    def _commit(self, consumer: Consumer, only: set[Partition] | None = None) -> None:
        changed = {
            tp: position
            for tp, position in self.tracker.positions().items()
            if self.tracker.committed(tp) != position and (only is None or tp in only)
        }
        if not changed:
            return
        try:
            consumer.commit(offsets=[TopicPartition(t, p, pos) for (t, p), pos in changed.items()], asynchronous=False)
        except KafkaException as exc:
            log.warning("offset commit failed (%s); the settled records may be redelivered and skipped", exc)
            return
        self.tracker.mark_committed(changed)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.tracker.assign((tp.topic, tp.partition) for tp in partitions)
        log.info("assigned %s", _names(partitions))
        self.assigned.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self._commit(consumer, only=gone)
        self._forget(gone)
        log.info("revoked %s", _names(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._forget({(tp.topic, tp.partition) for tp in partitions})
        log.warning("lost %s", _names(partitions))

    def _forget(self, gone: set[Partition]) -> None:
        # Their new owner starts from the committed offsets; what is queued here would only be applied twice.
        self.tracker.revoke(gone)
        self.queues.drop(lambda record: (record.topic, record.partition) in gone)

    # --- the workers ------------------------------------------------------------------------------------------------

    def _work(self, stop: threading.Event) -> None:
        while not stop.is_set():
            key = self.queues.take(timeout=0.2)
            if key is not None:
                self._turn(key, stop)

    def _turn(self, key: tuple[str, str], stop: threading.Event) -> None:
        """Settle up to ITEMS_PER_TURN records of one owned key, then hand it back (with a delay if its head failed)."""
        retry: float | None = None
        try:
            for _ in range(ITEMS_PER_TURN):
                record = self.queues.head(key)
                if record is None or stop.is_set():
                    break
                assert record.partition is not None and record.offset is not None
                tp = (record.topic, record.partition)
                retry = self.processor.process(record, functools.partial(self.tracker.owns, tp))
                if not self.tracker.owns(tp):
                    retry = None  # revoked meanwhile: the partition's new owner redoes it from the checkpoint
                elif retry is not None:
                    break
                else:
                    self.tracker.settle(tp, record.offset)
                self.queues.pop(key, record)
        except Exception:
            log.exception("worker failed on key %s; retrying it shortly", key)
            retry = 1.0
        finally:
            self.queues.release(key, retry)


def topics_for_caps(caps: Mapping[str, CapabilitySpec]) -> dict[str, int]:
    """Return {topic: partitions} for the capabilities' topics and their dead-letter topics (as core.broker does)."""
    topics: dict[str, int] = {}
    for cap in caps.values():
        if cap.events is not None:
            topics[cap.events.topic] = cap.events.partitions
            topics[cap.events.dead_letter_topic] = cap.events.partitions
    return topics


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"


class ApplierConfigRefused(ValueError):
    """The environment or the rules cannot run an applier; the message says what to fix."""


@dataclass
class AppliedWorld:
    """An applier with everything it was built from; `close()` releases the connections it opened."""

    applier: EventApplier
    store: PostgresApplierStore
    caller: EventCaller
    close: Callable[[], None]


def build(
    settings: Settings,
    options: ApplierOptions = ApplierOptions(),
    on_applied: Callable[[Envelope], None] | None = None,
    metrics: ApplierMetrics | None = None,
) -> AppliedWorld:
    """Build an applier from settings (rules, database, legacy URL, Kafka); raise ApplierConfigRefused if unusable."""
    if not settings.kafka_bootstrap:
        raise ApplierConfigRefused(
            "STRANGLER_KAFKA_BOOTSTRAP is not set: the applier needs the Kafka bootstrap address"
        )
    store, caller, caps, close_parts = build_parts(settings, pool_size=options.workers + 2)
    sink = KafkaDeadLetterSink(settings.kafka_bootstrap, topics_for_caps(caps))
    metrics = metrics or ApplierMetrics()
    processor = EventProcessor(store, caller, sink, caps, metrics, on_applied)
    applier = EventApplier(processor, caps, settings.kafka_bootstrap, options, metrics)

    def close() -> None:
        sink.close()
        close_parts()

    return AppliedWorld(applier, store, caller, close)


def build_parts(
    settings: Settings, pool_size: int = 2
) -> tuple[PostgresApplierStore, EventCaller, dict[str, CapabilitySpec], Callable[[], None]]:
    """Return the store, the legacy caller and the events capabilities (also used by `events dlq replay`)."""
    rules = load_rules(settings.rules_path)
    adapters = adapter_registry()
    caps = events_capabilities(rules, adapters)
    if UPSTREAM not in rules.upstreams:
        raise ApplierConfigRefused(f"{rules.source}: no {UPSTREAM!r} upstream declared")
    client = UpstreamClient(upstream_config(rules.upstreams[UPSTREAM], settings.upstream_urls.get(UPSTREAM)))
    # Each event costs two statements; a ping on every checkout would add a third round trip. After an outage the
    # first statement on a dead connection fails, SQLAlchemy recycles the pool and the record is retried later.
    engine = sa.create_engine(settings.database_url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False)
    create_schema(engine)

    def close() -> None:
        client.close()
        engine.dispose()

    return PostgresApplierStore(engine), EventCaller(caps, adapters, client), caps, close


def main(argv: list[str] | None = None) -> int:
    """Run the applier configured by STRANGLER_* variables until SIGTERM/SIGINT; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m connectors.applier", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=ApplierOptions.workers)
    parser.add_argument("--group", default=ApplierOptions.group)
    parser.add_argument("--metrics-port", type=int, default=None)
    parser.add_argument("--session-timeout-ms", type=int, default=ApplierOptions.session_timeout_ms)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = Settings.from_env()
        world = build(settings, ApplierOptions(args.group, args.workers, args.session_timeout_ms))
    except (SettingsError, ApplierConfigRefused, ValueError, sa.exc.OperationalError) as exc:  # rules errors too
        print(f"apply-events: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.metrics_port is not None:
        start_http_server(args.metrics_port, registry=world.applier.metrics.registry)
    try:
        world.applier.run(stop)
    finally:
        world.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
