"""Change events to Kafka in a Debezium-style envelope (`before`, `after`, `op`, `source`, `ts_ms`), keyed by the key.

Events of a batch are flushed to the broker before the batch commits in the target, so none is lost; after a
crash the uncommitted batch is streamed and published again: delivery is at least once, and consumers drop
repeats by `source.lsn` (unique per change) or by key and `source.commit_lsn`.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from datetime import date, datetime
from datetime import time as dtime
from decimal import Decimal
from typing import Any
from uuid import UUID

from confluent_kafka import KafkaError, Producer

from core.broker import BrokerError, ensure_topics
from replication.pgoutput import UNCHANGED, lsn_to_str
from replication.plan import TablePlan
from replication.sinks import Sink, SinkUnavailable
from replication.stream import TxBegin

UNAVAILABLE = "__unavailable_value"  # an unchanged TOAST value the server did not send (Debezium's convention)


def _jsonable(value: Any) -> Any:
    if value is UNCHANGED:
        return UNAVAILABLE
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"cannot put {type(value).__name__} into an event")


def _record(
    plan: TablePlan, values: Sequence[Any] | None, columns: Sequence[Any] | None = None
) -> dict[str, Any] | None:
    if values is None:
        return None
    return {col.target: value for col, value in zip(columns or plan.columns, values, strict=True)}


def change_event(
    plan: TablePlan,
    op: str,
    before: Sequence[Any] | None,
    after: Sequence[Any] | None,
    key: Sequence[Any],
    lsn: int,
    tx: TxBegin | None,
    slot: str,
    now_ms: int,
) -> tuple[bytes, bytes]:
    """Return (key, value) JSON bytes of one change in target terms; a delete without the old row carries its key."""
    schema, table = plan.source.split(".", 1)
    before_record = _record(plan, key, plan.key) if op == "d" and before is None else _record(plan, before)
    envelope = {
        "before": before_record,
        "after": _record(plan, after),
        "op": op,
        "source": {
            "connector": "strangler", "name": slot, "schema": schema, "table": table, "target": plan.target,
            "lsn": lsn, "lsn_text": lsn_to_str(lsn), "txId": tx.xid if tx else None,
            "commit_lsn": tx.final_lsn if tx else None,
            "ts_ms": int(tx.commit_time.timestamp() * 1000) if tx else None,
        },
        "ts_ms": now_ms,
    }  # fmt: skip
    key_json = json.dumps({c.target: v for c, v in zip(plan.key, key, strict=True)}, default=_jsonable)
    return key_json.encode(), json.dumps(envelope, default=_jsonable).encode()


class KafkaSink(Sink):
    """Publish every applied change to `PREFIX.schema.table` (the target table) before its batch commits."""

    wants_changes = True

    def __init__(self, bootstrap: str, prefix: str = "strangler.cdc", slot: str = "", partitions: int = 3) -> None:
        self.bootstrap, self.prefix, self.slot, self.partitions = bootstrap, prefix, slot, partitions
        self.producer = Producer({
            "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
            "queue.buffering.max.messages": 1_000_000, "log_level": 3,
        })  # fmt: skip
        self._topics: set[str] = set()
        self._tx: TxBegin | None = None
        self._errors: list[str] = []

    def topic(self, plan: TablePlan) -> str:
        """Return (creating it on first use) the topic of a target table."""
        name = f"{self.prefix}.{plan.target}"
        if name not in self._topics:
            try:
                ensure_topics(self.bootstrap, {name: self.partitions})
            except BrokerError as exc:
                raise SinkUnavailable(str(exc)) from None
            self._topics.add(name)
        return name

    def active(self, slot: str) -> None:
        self.slot = self.slot or slot

    def begin(self, tx: TxBegin) -> None:
        self._tx = tx

    def _delivered(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            self._errors.append(err.str())

    def change(
        self,
        plan: TablePlan,
        op: str,
        before: Sequence[Any] | None,
        after: Sequence[Any] | None,
        key: Sequence[Any],
        lsn: int,
    ) -> None:
        key_bytes, value = change_event(plan, op, before, after, key, lsn, self._tx, self.slot, int(time.time() * 1000))
        topic = self.topic(plan)
        while True:
            try:
                self.producer.produce(topic, value=value, key=key_bytes, on_delivery=self._delivered)
                return
            except BufferError:  # the local queue is full: let deliveries drain
                self.producer.poll(0.1)

    def truncated(self, plans: Sequence[TablePlan]) -> None:
        for plan in plans:
            self.producer.produce(self.topic(plan), value=json.dumps({"op": "t", "source": {
                "connector": "strangler", "name": self.slot, "table": plan.source, "target": plan.target,
                "txId": self._tx.xid if self._tx else None}, "ts_ms": int(time.time() * 1000)}).encode())  # fmt: skip

    def before_commit(self) -> None:
        left = self.producer.flush(30)
        errors, self._errors = self._errors, []
        if left or errors:
            raise SinkUnavailable(f"the broker at {self.bootstrap} did not take {left or len(errors)} events: "
                                    f"{errors[0] if errors else 'timed out'}")  # fmt: skip

    def close(self) -> None:
        self.producer.flush(10)
