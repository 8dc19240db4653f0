"""Settle one record: skip it if settled, apply the key's missing earlier events first, apply it, or dead-letter it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import sqlalchemy as sa
import tenacity
from confluent_kafka import KafkaError, KafkaException, Producer

from connectors.applier_call import EventCaller, Result
from connectors.applier_metrics import ApplierMetrics
from connectors.applier_store import SETTLED, DeadLetter, KeyState, PostgresApplierStore
from core.broker import BrokerError, ensure_topics
from core.events import Envelope, EnvelopeError
from core.rules import CapabilitySpec, EventsSpec

log = logging.getLogger("strangler.applier")

MAX_BACKOFF_S = 30.0
MAX_FLOORS = 100_000  # keys whose last settled sequence is remembered (a lower bound: forgetting is always safe)
Retry = float | None  # None: settled; a number: try this record again after so many seconds


@dataclass(frozen=True)
class Record:
    """One record to settle: consumed from a partition, or refilled from the outbox (no partition or offset)."""

    topic: str
    value: bytes | None
    key: str | None
    partition: int | None = None
    offset: int | None = None
    envelope: Envelope | None = None
    problem: str | None = None  # why it cannot be applied at all (not an envelope, unknown capability)
    known: KeyState | None = None  # its event's state as read when it was consumed (may be behind by now)

    @property
    def queue_key(self) -> tuple[str, str]:
        """Return the per-key queue it waits in: its capability and key, or its partition when it is malformed."""
        if self.envelope is not None:
            return (self.envelope.capability, self.envelope.key)
        return ("", f"{self.topic}/{self.partition}")


def parse_record(
    topic: str, partition: int | None, offset: int | None, key: bytes | None, value: bytes | None,
    caps: Mapping[str, CapabilitySpec],
) -> Record:  # fmt: skip
    """Return the record with its envelope, or with the problem that keeps it from being applied."""
    text_key = key.decode("utf-8", "replace") if key is not None else None
    try:
        envelope = Envelope.from_json(value)
    except EnvelopeError as exc:
        return Record(topic, value, text_key, partition, offset, problem=f"malformed: {exc}")
    cap = caps.get(envelope.capability)
    if cap is None or cap.events is None:
        return Record(topic, value, text_key, partition, offset, problem=f"unknown capability {envelope.capability!r}")
    if cap.events.topic != topic:
        problem = f"capability {cap.name} is published on {cap.events.topic}, not {topic}"
        return Record(topic, value, text_key, partition, offset, problem=problem)
    return Record(topic, value, text_key, partition, offset, envelope=envelope)


class DeadLetterSink(Protocol):
    """Where dead letters are published; `send` returns once the record is durable there, else raises."""

    def send(self, topic: str, key: str | None, value: bytes | None, headers: Mapping[str, str]) -> None: ...


class DeadLetterError(RuntimeError):
    """The dead-letter topic did not acknowledge a record."""


class KafkaDeadLetterSink:
    """Publishes dead letters with an idempotent producer and waits for the broker's acknowledgement."""

    def __init__(self, bootstrap: str, topics: Mapping[str, int] | None = None, timeout_s: float = 10.0) -> None:
        self._bootstrap, self._topics, self._timeout = bootstrap, dict(topics or {}), timeout_s
        # A broker that lost its topics (the embedded one, on restart) must not auto-create a dead-letter topic with
        # its default partitions: the sink creates the configured ones again instead.
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 0,
                "allow.auto.create.topics": False, "logger": log,
            }
        )  # fmt: skip

    def send(self, topic: str, key: str | None, value: bytes | None, headers: Mapping[str, str]) -> None:
        """Produce one dead letter and return once acknowledged, else raise DeadLetterError."""
        done = threading.Event()
        errors: list[KafkaError | None] = []

        def report(err: KafkaError | None, _msg: object) -> None:
            errors.append(err)
            done.set()

        self._producer.produce(topic, value, key, headers=dict(headers), on_delivery=report)
        self._producer.flush(self._timeout)  # serves this thread's and others' delivery reports
        if not done.wait(self._timeout) or errors[0] is not None:
            why = errors[0].str() if errors and errors[0] else "no acknowledgement"
            if self._topics:
                try:
                    ensure_topics(self._bootstrap, self._topics, timeout=5.0)
                except (BrokerError, KafkaException) as exc:
                    why += f"; cannot ensure topics: {exc}"
            raise DeadLetterError(f"{topic}: {why}")

    def close(self) -> None:
        """Wait briefly for anything still in flight."""
        self._producer.flush(2.0)


def _backoff(spec: EventsSpec) -> tenacity.wait.wait_base:
    base = spec.retry_backoff_ms / 1000
    return tenacity.wait_exponential(multiplier=base, min=base, max=MAX_BACKOFF_S) + tenacity.wait_random(0, base / 2)


def _wait(strategy: tenacity.wait.wait_base, failures: int) -> float:
    state = tenacity.RetryCallState(tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = failures
    return float(strategy(state))


class EventProcessor:
    """Settles records of one key at a time (callers guarantee that); thread-safe across different keys."""

    def __init__(
        self,
        store: PostgresApplierStore,
        caller: EventCaller,
        sink: DeadLetterSink,
        caps: Mapping[str, CapabilitySpec],
        metrics: ApplierMetrics,
        on_applied: Callable[[Envelope], None] | None = None,
    ) -> None:
        self.store, self.caller, self.sink, self.caps, self.metrics = store, caller, sink, caps, metrics
        self.on_applied = on_applied
        self._dlq_topics = {c.events.topic: c.events.dead_letter_topic for c in caps.values() if c.events}
        self._waits = {c.name: _backoff(c.events) for c in caps.values() if c.events}
        self._failures: dict[tuple[str, str], int] = {}  # consecutive failures per key, for the backoff
        # The last sequence this process settled per key: never above the key's checkpoint, so always safe to trust.
        self._floors: dict[tuple[str, str], int] = {}

    def prefetch(self, records: list[Record]) -> list[Record]:
        """Return the records with their events' states read in one statement (as they were, if the database fails)."""
        events = [(r.envelope.id, r.envelope.capability) for r in records if r.envelope is not None]
        if not events:
            return records
        try:
            states = self.store.key_states(events)
        except sa.exc.DBAPIError as exc:
            log.warning("cannot read the states of %d events (%s); each is read when applied", len(events), exc)
            return records
        return [replace(r, known=states.get(r.envelope.id)) if r.envelope is not None else r for r in records]

    def process(self, record: Record, still_ours: Callable[[], bool] = lambda: True) -> Retry:
        """Settle one record, or return after how many seconds to try it again (its key waits meanwhile)."""
        try:
            if record.envelope is None:
                retry = self._dead_letter_unusable(record, record.problem or "unusable record")
            else:
                retry = self._settle(record, record.envelope, still_ours)
        except (sa.exc.DBAPIError, DeadLetterError) as exc:
            log.warning("cannot settle %s for now (%s: %s)", record.queue_key, type(exc).__name__, exc)
            retry = self._retry_later(record.queue_key, None)
        if retry is None:
            self._failures.pop(record.queue_key, None)  # the backoff starts afresh for the key's next failure
        return retry

    def _key_state(self, record: Record, envelope: Envelope) -> KeyState:
        """Return the event's state as read at consumption if that still decides it, else as read now."""
        floor = self._floors.get(record.queue_key, 0)
        state = record.known
        if state is not None and state.known:
            # A state read at consumption can only be behind: its verdict stands if it says settled or next in line.
            state = replace(state, applied=max(state.applied, floor))
            if state.settled(envelope.sequence) or envelope.sequence == state.applied + 1:
                return state
        state = self.store.key_state(envelope.id, envelope.capability, envelope.key)
        return replace(state, applied=max(state.applied, floor))

    def _settled(self, queue_key: tuple[str, str], sequence: int) -> None:
        if len(self._floors) >= MAX_FLOORS:
            self._floors.clear()
        if sequence > self._floors.get(queue_key, 0):
            self._floors[queue_key] = sequence

    def _settle(self, record: Record, envelope: Envelope, still_ours: Callable[[], bool]) -> Retry:
        state = self._key_state(record, envelope)
        if not state.known or (state.key, state.sequence) != (envelope.key, envelope.sequence):
            return self._dead_letter_unusable(record, "not an update the facade accepted (unknown id, key or sequence)")
        if state.settled(envelope.sequence):
            self.metrics.skipped.labels(envelope.capability).inc()
            self._settled(record.queue_key, envelope.sequence)
            return None
        chain = [record]
        if envelope.sequence > state.applied + 1:
            earlier = self._earlier(record.topic, envelope, state.applied)
            if earlier is None:
                return self._retry_later(record.queue_key, None)
            chain = [*earlier, record]
        for item in chain:
            if not still_ours():
                return 0.0  # the partition went to another consumer mid-way; it redoes this key from its checkpoint
            assert item.envelope is not None
            retry = self._apply(item, item.envelope)
            if retry is not None:
                return retry
            self._settled(record.queue_key, item.envelope.sequence)
        return None

    def _earlier(self, topic: str, envelope: Envelope, applied: int) -> list[Record] | None:
        """Return the key's unsettled earlier events from the outbox, in order; None if one cannot be read yet."""
        records = []
        for row in self.store.earlier(envelope.capability, envelope.key, applied, envelope.sequence):
            if row.state in SETTLED:
                continue
            try:
                earlier = Envelope.from_json(row.value) if row.value is not None else None
            except EnvelopeError:
                earlier = None
            if earlier is None:
                log.error(
                    "%s %s: sequence %d is accepted but has no readable envelope in the outbox; the key waits",
                    envelope.capability, envelope.key, row.sequence,
                )  # fmt: skip
                return None
            records.append(Record(topic, row.value, envelope.key, envelope=earlier))
        if records:
            missing = [r.envelope.sequence for r in records if r.envelope]
            log.info(
                "%s %s: sequence %d arrived before %s; applying those from the outbox first",
                envelope.capability, envelope.key, envelope.sequence, missing,
            )  # fmt: skip
        return records

    def _apply(self, record: Record, envelope: Envelope) -> Retry:
        result = self.caller.apply(envelope)
        if result.kind == "applied":
            latency = self.store.record_applied(envelope)
            if latency is not None:
                self.metrics.applied.labels(envelope.capability).inc()
                self.metrics.latency.labels(envelope.capability).observe(max(0.0, latency))
                if self.on_applied is not None:
                    self.on_applied(envelope)
            return None
        if result.kind == "permanent":
            return self._dead_letter_event(record, envelope, result, f"permanent error: {result.reason}", "permanent")
        self.metrics.retried.labels(envelope.capability).inc()
        if result.sent:
            attempts = self.store.record_attempt(envelope.id)
            spec = self.caps[envelope.capability].events
            assert spec is not None
            if attempts >= spec.max_attempts:
                why = f"gave up after {attempts} attempts: {result.reason}"
                return self._dead_letter_event(record, envelope, result, why, "exhausted")
        log.info("%s %s seq %d: %s; retrying", envelope.capability, envelope.key, envelope.sequence, result.reason)
        return self._retry_later(record.queue_key, result)

    def _retry_later(self, queue_key: tuple[str, str], result: Result | None) -> float:
        failures = self._failures.get(queue_key, 0) + 1
        self._failures[queue_key] = failures
        strategy = self._waits.get(queue_key[0]) or tenacity.wait_exponential(multiplier=0.2, max=MAX_BACKOFF_S)
        return max(_wait(strategy, failures), result.retry_after if result else 0.0)

    def _dead_letter_event(self, record: Record, envelope: Envelope, result: Result, why: str, kind: str) -> Retry:
        headers = self._headers(record, why) | {
            "event_id": envelope.id, "capability": envelope.capability, "status": str(result.status),
        }  # fmt: skip
        dlq = self._dlq_topics[record.topic]
        self.sink.send(dlq, envelope.key, record.value, headers)
        letter = DeadLetter(record.topic, why, record.value, envelope.key, envelope.id, record.partition, record.offset)
        # An exhausted event's last call is already counted; a permanent one's counts if it reached legacy.
        attempt = kind == "permanent" and result.sent
        if self.store.record_failed(envelope, dict(result.error) or {"status": result.status}, letter, attempt):
            self.metrics.failed.labels(envelope.capability).inc()
            self.metrics.dead_lettered.labels(dlq, kind).inc()
            log.warning("%s %s seq %d dead-lettered: %s", envelope.capability, envelope.key, envelope.sequence, why)
        return None

    def _dead_letter_unusable(self, record: Record, why: str) -> Retry:
        dlq = self._dlq_topics[record.topic]
        self.sink.send(dlq, record.key, record.value, self._headers(record, why))
        event_id = record.envelope.id if record.envelope is not None else None
        letter = DeadLetter(record.topic, why, record.value, record.key, event_id, record.partition, record.offset)
        self.store.record_malformed(letter)
        self.metrics.dead_lettered.labels(dlq, "malformed").inc()
        log.warning("record %s/%s@%s dead-lettered: %s", record.topic, record.partition, record.offset, why)
        return None

    @staticmethod
    def _headers(record: Record, why: str) -> dict[str, Any]:
        headers = {"reason": why, "source_topic": record.topic}
        if record.partition is not None:
            headers["source_partition"] = str(record.partition)
            headers["source_offset"] = str(record.offset)
        return headers
