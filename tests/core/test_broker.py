"""The embedded Tansu broker: starts on loopback, creates topics idempotently, forgets everything on restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from core.broker import BrokerError, EmbeddedBroker, broker_ready, ensure_topics, tansu_binary, topics_for
from tests.builders import shipped_rules


def partitions(bootstrap: str) -> dict[str, int]:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5)
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def test_starts_and_creates_topics_with_their_partitions_once(tmp_path: Path) -> None:
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        assert broker.alive() and broker_ready(broker.bootstrap)
        assert sorted(ensure_topics(broker.bootstrap, {"orders": 6, "orders.dlq": 1})) == ["orders", "orders.dlq"]
        assert ensure_topics(broker.bootstrap, {"orders": 6, "other": 2}) == ["other"]  # existing ones are fine
        assert partitions(broker.bootstrap) == {"orders": 6, "orders.dlq": 1, "other": 2}
    assert not broker.alive()
    assert not broker_ready(broker.bootstrap, timeout=0.3)


def test_restart_keeps_the_port_and_loses_every_topic(tmp_path: Path) -> None:
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        bootstrap = broker.bootstrap
        ensure_topics(bootstrap, {"profile": 3})
        assert partitions(bootstrap) == {"profile": 3}
        broker.restart()
        assert broker.bootstrap == bootstrap and broker.alive()
        assert partitions(bootstrap) == {}


def test_kill_is_a_crash_and_start_brings_it_back(tmp_path: Path) -> None:
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        broker.kill()
        assert not broker.alive() and not broker_ready(broker.bootstrap, timeout=0.3)
        broker.start()
        assert broker_ready(broker.bootstrap)


def test_a_missing_binary_is_refused_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-tansu"
    with pytest.raises(BrokerError, match=r"no-such-tansu.*missing or not executable"):
        EmbeddedBroker(binary=missing).start()


def test_a_port_in_use_is_refused_rather_than_probed(tmp_path: Path) -> None:
    with EmbeddedBroker(log_path=tmp_path / "first.log") as first:
        clash = EmbeddedBroker(port=first.port, log_path=tmp_path / "second.log")
        with pytest.raises(BrokerError, match=f"127.0.0.1:{first.port} is in use"):
            clash.start()
        assert not clash.alive() and first.alive()


def test_the_wheel_carries_the_binary() -> None:
    assert tansu_binary().name == "tansu" and tansu_binary().is_file()


def test_topics_for_rules_lists_each_events_topic_and_its_dead_letter_topic() -> None:
    assert topics_for(shipped_rules()) == {"strangler.profile-updates": 6, "strangler.profile-updates.dlq": 6}
