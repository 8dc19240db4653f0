"""The outbox relay: publishes accepted updates from the control-plane outbox to Kafka, marking only acknowledged rows.

One relay is active at a time (a PostgreSQL session advisory lock held on the relay's own connection); others wait as
standbys and take over when it dies. The outbox is read in (transaction id, id) order from the last recorded
position on, never past a transaction still running (`connectors.relay_store`), so no row can commit behind it. A pass
sends one batch at a time and records it once Kafka acknowledged all of it, as one row of `event_publications` (its
last position): nothing is written per row. The producer reports failures only, so a batch is acknowledged when the
producer's queue drains with no failure (`connectors.relay_batch`), and the next batch is read while one is in
flight. A batch not acknowledged whole ends the pass, and the next pass sends everything after the last position again.
The requests themselves are not written: their status reads "published" from the publication log. A watchdog copies
again every accepted update that was published but not applied within `republish_after_s` (the embedded broker
forgets everything on restart); the applier's dedup by event id and per-key sequence makes the duplicates harmless.
The active relay also prunes applied events past their retention, a batch between passes (`connectors.event_retention`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from confluent_kafka import KafkaException, Producer
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from connectors import relay_store as store
from connectors.event_retention import Retention
from connectors.relay_batch import Batch, PassResult
from core.broker import BrokerError, ensure_topics
from core.db import AdvisoryLocks

log = logging.getLogger("strangler.relay")

RELAY_LOCK_KEY = AdvisoryLocks.RELAY  # one active relay per control-plane database

PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    # A broker that lost a topic (the embedded one on restart) would auto-create it with its default partition
    # count and scatter our keys; the relay recreates topics itself, with the configured partitions.
    "allow.auto.create.topics": False,
    "topic.metadata.propagation.max.ms": 2000,
    "linger.ms": 5,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 500_000,
    # A batch is acknowledged when the producer's queue drains with no failure reported: a report per row would cost
    # a Python callback and a message object each, more than the rest of the relay's work on the row.
    "delivery.report.only.error": True,
}


BATCH_SIZE = 10_000  # rows per read and per mark: larger batches make larger produce requests (fewer round trips)


def default_backoff(failures: int) -> float:
    """Return the wait after `failures` consecutive failures: 0.2 s doubling up to 5 s."""
    return float(min(5.0, 0.2 * 2 ** (failures - 1)))


class OutboxRelay:
    """Publish unpublished outbox rows in id order and mark them published only once Kafka acknowledged them."""

    def __init__(
        self,
        engine: sa.Engine,
        producer_config: Mapping[str, Any] | str,
        *,
        batch_size: int = BATCH_SIZE,
        flush_timeout_s: float = 10.0,
        topics: Mapping[str, int] | None = None,
        republish_after_s: float = 30.0,
        watchdog_interval_s: float = 5.0,
        idle_wait_s: float = 0.05,
        standby_poll_s: float = 1.0,
        lock_key: int = RELAY_LOCK_KEY,
        retention: Retention | None = None,
        registry: CollectorRegistry | None = None,
        backoff: Callable[[int], float] = default_backoff,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        config = {"bootstrap.servers": producer_config} if isinstance(producer_config, str) else dict(producer_config)
        self.producer_config = {**PRODUCER_DEFAULTS, "logger": log, **config}
        self.engine = engine
        self.batch_size = batch_size
        self.flush_timeout_s = flush_timeout_s
        self.topics = dict(topics or {})
        self.republish_after_s = republish_after_s
        self.watchdog_interval_s = watchdog_interval_s
        self.idle_wait_s = idle_wait_s
        self.standby_poll_s = standby_poll_s
        self.lock_key = lock_key
        self.retention = retention
        self.backoff = backoff
        self.clock = clock
        self.registry = registry if registry is not None else CollectorRegistry()
        self.registry.register(store.OutboxBacklogCollector(engine))
        r = self.registry
        self.published = Counter("strangler_relay_published", "Outbox rows acknowledged by Kafka", registry=r)
        self.republished = Counter("strangler_relay_republished", "Events queued again by the watchdog", registry=r)
        self.unacknowledged = Counter("strangler_relay_unacknowledged", "Rows sent, not acknowledged", registry=r)
        self.pruned = Counter("strangler_events_pruned", "Applied events removed after the retention", registry=r)
        self.active = Gauge("strangler_relay_active", "1 while this relay holds the relay lock", registry=r)
        self.batch_seconds = Histogram(
            "strangler_relay_batch_seconds", "One batch from read to marked published", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )  # fmt: skip
        self._conn: sa.Connection | None = None  # holds the advisory lock while active
        self._producer: Producer | None = None
        self._topics_ready = False
        self._failures = 0
        self._next_watchdog = 0.0

    # --- leadership -------------------------------------------------------------------------------------------------

    @property
    def is_active(self) -> bool:
        return self._conn is not None

    def acquire(self) -> bool:
        """Try once to become the active relay; return True if this relay holds the lock."""
        if self._conn is not None:
            return True
        conn = self._connect()
        try:
            got = conn.execute(sa.select(sa.func.pg_try_advisory_lock(self.lock_key))).scalar_one()
            if got:
                # A burst makes the outbox large before statistics catch up; a bitmap scan plus sort would then read
                # the whole backlog for every batch, where the ordered scan of the position's index reads one batch.
                conn.exec_driver_sql("SET enable_bitmapscan = off")
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn, self._topics_ready, self._next_watchdog = conn, False, 0.0
        self.active.set(1)
        log.info("relay active (holds advisory lock %d)", self.lock_key)
        return True

    def release(self) -> None:
        """Stop being the active relay: drop the producer and close the lock's session (which frees the lock)."""
        self._discard_producer()
        conn, self._conn = self._conn, None
        self.active.set(0)
        if conn is not None:
            conn.invalidate()  # closing the session frees the lock; never hand a lock-holding session to the pool
            conn.close()

    def _connect(self) -> sa.Connection:
        return self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def _work_conn(self) -> sa.Connection:
        if self._conn is None and not self.acquire():
            raise RuntimeError("another relay is active")
        assert self._conn is not None
        return self._conn

    # --- publishing -------------------------------------------------------------------------------------------------

    def publish_batch(self) -> int:
        """Publish one batch in position order, wait until Kafka acknowledged it, record it if all of it was;
        return how many rows were recorded published."""
        conn = self._work_conn()
        rows = self._read(conn, self._resume_at(conn))
        return self._publish(conn, rows, threading.Event(), 0.0).marked if rows else 0

    def publish_pass(self, stop: threading.Event, max_seconds: float = 5.0) -> PassResult:
        """Publish unpublished rows a batch at a time until none are left (or a failure, `stop`, or time up)."""
        conn = self._work_conn()
        rows = self._read(conn, self._resume_at(conn))
        return self._publish(conn, rows, stop, max_seconds) if rows else PassResult()

    def _publish(self, conn: sa.Connection, rows: Sequence[Any], stop: threading.Event, seconds: float) -> PassResult:
        """Send `rows` and the batches after them, each recorded once acknowledged whole, while time is left."""
        result, ends = PassResult(), self.clock() + seconds
        while rows:
            result.read += len(rows)
            batch = self._send(rows)
            # The next batch is read while the broker takes this one (rows in flight are not published yet: read on
            # past them). Reading first and serving the acknowledgements after keeps the two off the GIL together.
            more = len(rows) == self.batch_size and not stop.is_set() and self.clock() <= ends
            rows = self._read(conn, batch.position) if more else []
            batch.wait(self._producer, self.clock, self.flush_timeout_s)
            if not batch.acknowledged():
                self._unacknowledged(batch)
                self._broker_lost()
                result.failed = True
                break
            self._mark(conn, batch)
            result.marked += len(batch.rows)
        return result

    def _resume_at(self, conn: sa.Connection) -> tuple[int, int]:
        """Return the position of the last publication: (0, 0) before the first."""
        last = conn.execute(store.resume_at).first()
        return (int(last.upto_txid), int(last.upto_id)) if last is not None else (0, 0)

    def _read(self, conn: sa.Connection, after: tuple[int, int]) -> Sequence[tuple[int, int, str, str, bytes]]:
        """Return the next rows past position `after` that no running transaction can precede: (id, txid, topic,
        key, value) in position order."""
        # Plain tuples in binary format straight from the driver: result rows would cost more than the query.
        driver = conn.connection.driver_connection
        assert driver is not None
        with driver.cursor(binary=True) as cursor:
            params = {"txid": after[0], "id": after[1], "limit": self.batch_size}
            cursor.execute(store.SELECT_AFTER_SQL, params, prepare=True)
            return cursor.fetchall()

    def _send(self, rows: Sequence[Any]) -> Batch:
        now = time.perf_counter()
        batch = Batch(rows, started=now)
        report = batch.report  # called for failed rows only
        try:
            producer = self._producer or self._new_producer()
            produce = producer.produce
            for _id, _txid, topic, key, value in rows:
                try:
                    produce(topic, value, key, -1, report)  # positional: cheaper to parse than keywords
                except BufferError:
                    while True:  # the local queue is full: serve the broker's answers until there is room
                        producer.poll(0.05)
                        try:
                            produce(topic, value, key, -1, report)
                            break
                        except BufferError:
                            continue
        except KafkaException as exc:
            # The rest of the batch was never produced, so it cannot complete: nothing of it is marked, and there is
            # no point waiting for the rest before the relay recreates topics and tries again.
            log.warning("producer failed: %s", exc)
            batch.abandoned = True
        return batch

    def _mark(self, conn: sa.Connection, batch: Batch) -> None:
        txid, row_id = batch.position
        conn.execute(store.record_publication, {"upto_txid": txid, "upto_id": row_id, "batch_rows": len(batch.rows)})
        self.published.inc(len(batch.rows))
        self.batch_seconds.observe(time.perf_counter() - batch.started)

    def _unacknowledged(self, batch: Batch) -> None:
        self.unacknowledged.inc(len(batch.rows))

    def _new_producer(self) -> Producer:
        self._producer = Producer(self.producer_config)
        return self._producer

    def _broker_lost(self) -> None:
        # Whatever this producer still holds could go out after a retried row of the same key: start afresh, and
        # recreate topics first (a restarted embedded broker has none).
        self._discard_producer()
        self._topics_ready = False

    def _discard_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.purge()
            producer.flush(0)  # serve the purge reports; nothing of this producer is marked any more

    # --- the watchdog -----------------------------------------------------------------------------------------------

    def requeue_stale(self) -> int:
        """Copy again every event published over `republish_after_s` ago and still not applied; return how many."""
        event_ids = self._work_conn().execute(store.requeue, {"after_s": self.republish_after_s}).scalars().all()
        if event_ids:
            self.republished.inc(len(event_ids))
            log.warning(
                "republishing %d events not applied within %gs (e.g. %s)",
                len(event_ids), self.republish_after_s, ", ".join(event_ids[:5]),
            )  # fmt: skip
        return len(event_ids)

    # --- the loop ---------------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Relay until `stop` is set: standby while another relay is active, wait out broker and database outages."""
        standing_by = False
        try:
            while not stop.is_set():
                try:
                    if not self.acquire():
                        if not standing_by:
                            log.info("relay standing by: another relay holds advisory lock %d", self.lock_key)
                        standing_by = True
                        stop.wait(self.standby_poll_s)
                        continue
                    standing_by = False
                    self._step(stop)
                except sa.exc.DBAPIError as exc:
                    log.warning("control-plane database unavailable (%s); retrying", exc.__class__.__name__)
                    self.release()
                    self._failed(stop)
        finally:
            self.release()

    def _step(self, stop: threading.Event) -> None:
        now = self.clock()
        if now >= self._next_watchdog:
            self._next_watchdog = now + self.watchdog_interval_s
            self.requeue_stale()
        if self.retention is not None:
            self.pruned.inc(self.retention.step(self._work_conn()))  # a batch per step while a round is under way
        if not self._topics_ready and self.topics:
            try:
                ensure_topics(self.producer_config["bootstrap.servers"], self.topics, timeout=5.0)
                self._topics_ready = True
            except (BrokerError, KafkaException) as exc:
                log.warning("cannot ensure topics: %s", exc)
                self._failed(stop)
                return
        if self._producer is None:
            # A new idempotent producer has its producer id only ~0.5 s after it starts (librdkafka retries the id
            # request on a 500 ms timer once the bootstrap connection is dropped): start it while nothing waits.
            self._new_producer()
        result = self.publish_pass(stop, max_seconds=self.watchdog_interval_s)
        if result.failed:
            self._failed(stop)
        elif result.read == 0:
            self._failures = 0
            if self._producer is not None:
                self._producer.poll(0)  # its logs, errors and statistics are served by polls, idle or not
            stop.wait(self.idle_wait_s)
        else:
            self._failures = 0

    def _failed(self, stop: threading.Event) -> None:
        self._failures += 1
        delay = self.backoff(self._failures)
        log.warning("relay paused for %.1fs after %d consecutive failures", delay, self._failures)
        stop.wait(delay)

    def close(self) -> None:
        """Release the lock and the producer (rows sent but not yet marked are simply published again)."""
        self.release()
