"""--emit-events: every applied change reaches Kafka in a Debezium-style envelope, keyed by the row's key."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from core.broker import EmbeddedBroker
from core.procs import wait_until
from replication.events import KafkaSink
from tests.replication.support import Pair, ThreadedReplicator


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as running:
        yield running


def read_all(bootstrap: str, topic: str, expected: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "t", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)])
    out: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def more() -> bool:
        msg = consumer.poll(0.2)
        if msg is not None and msg.error() is None:
            out.append((json.loads(msg.key()), json.loads(msg.value())))
        return len(out) >= expected

    try:
        wait_until(more, 30, 0, f"{expected} events on {topic}")
    finally:
        consumer.close()
    return out


def test_changes_are_published_with_before_after_op_and_source(
    make_pair: Callable[..., Pair], broker: EmbeddedBroker
) -> None:
    pair = make_pair(customers=5)
    replicator = ThreadedReplicator(pair.options(), sink=KafkaSink(broker.bootstrap, "cdc"))
    try:
        replicator.wait_for(lambda: pair.applied_lsn() > 0, "the snapshot")
        with pair.connect("source") as conn:
            conn.execute("UPDATE cbs.acctmast SET curbal = 123456 WHERE acctno = '0000000002'")
            conn.execute("INSERT INTO cbs.custmast VALUES ('0000000099', 'New Customer', 'n@c.example', '', '', '', "
                         "'', '20240101', '20240102')")  # fmt: skip
            conn.execute("DELETE FROM cbs.custmast WHERE custno = '0000000099'")
        pair.wait_caught_up(alive=replicator.alive)
    finally:
        replicator.stop()
    ((key, update),) = read_all(broker.bootstrap, "cdc.cloud.accounts", 1)
    assert key == {"id": 2}
    assert update["op"] == "u" and update["before"] is None and update["after"]["balance"] == "1234.56"
    assert update["source"]["table"] == "acctmast" and update["source"]["schema"] == "cbs"
    assert update["source"]["lsn"] > 0 and update["source"]["txId"] > 0 and update["ts_ms"] >= update["source"]["ts_ms"]
    (created_key, created), (deleted_key, deleted) = read_all(broker.bootstrap, "cdc.cloud.customers", 2)
    assert created_key == deleted_key == {"id": 99}
    assert created["op"] == "c" and created["after"]["updated_at"] == "2024-01-02T00:00:00+00:00"
    assert deleted["op"] == "d" and deleted["before"] == {"id": 99} and deleted["after"] is None
