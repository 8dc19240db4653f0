"""The applier as a process: SIGKILLed mid-stream again and again, every event is still applied exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from click.testing import CliRunner
from confluent_kafka import Consumer, TopicPartition

from cli.events import apply_events
from core.db import event_requests
from core.pgcluster import free_port
from core.procs import wait_until
from tests.connectors.applier_world import World

REPO = Path(__file__).resolve().parents[2]
KILLS = 3


def applied(world: World) -> int:
    with world.engine.connect() as conn:
        query = sa.select(sa.func.count()).where(event_requests.c.state == "applied")
        return int(conn.execute(query).scalar_one())


def start(argv: list[str], world: World, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, *argv], cwd=REPO, env={**os.environ, **world.env()}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the SIGKILL takes it all, and only it
        )  # fmt: skip


def wait_for_progress(world: World, proc: subprocess.Popen[bytes], target: int) -> None:
    wait_until(lambda: applied(world) >= target or proc.poll() is not None, 60, what=f"{target} applied")


def committed(world: World, group: str, partitions: int = 3) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": world.broker.bootstrap, "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(world.topic, p) for p in range(partitions)], timeout=10)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in tps}


def test_an_applier_killed_mid_stream_still_applies_every_event_exactly_once(world: World, tmp_path: Path) -> None:
    keys = world.customers(10)
    envelopes = [world.accept(c, {"email": f"k{c}.s{s}@example.com"}) for s in range(1, 31) for c in keys]
    ends: dict[int, int] = defaultdict(int)

    def delivered(partition: int, offset: int) -> None:
        ends[partition] = max(ends[partition], offset + 1)

    world.publish(*envelopes, delivered=delivered)
    world.faults(latency_ms=15, paths=["/CBS/CUST/PROFUPD"])  # slow enough to be caught mid-stream
    group, log = f"crash-{world.topic}", tmp_path / "applier.log"
    module = ["-m", "connectors.applier", "--group", group, "--workers", "4", "--session-timeout-ms", "1500"]
    for _ in range(KILLS):
        target = applied(world) + 25
        victim = start(module, world, log)
        wait_for_progress(world, victim, target)
        assert victim.poll() is None, log.read_text()[-3000:]
        os.killpg(victim.pid, signal.SIGKILL)  # in the middle of legacy calls and commits
        victim.wait(10)
    assert applied(world) < len(envelopes), "the stream ended before the last kill"

    # The operator's command takes over and finishes; it leaves on SIGTERM with its offsets committed.
    port = free_port()
    cli = ["-c", "from cli.events import apply_events; apply_events()", "--group", group, "--workers", "4",
           "--session-timeout-ms", "3000", "--metrics-port", str(port)]  # fmt: skip
    proc = start(cli, world, log)
    try:
        wait_until(lambda: applied(world) == len(envelopes) or proc.poll() is not None, 60, what="every event applied")
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "strangler_applier_applied_total" in metrics and "strangler_consumer_lag{" in metrics
        wait_until(lambda: committed(world, group) == dict(ends), 20, what="offsets committed up to the end")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]

    log_rows = world.legacy_log(keys)
    assert sorted(log_rows) == sorted(e.id for e in envelopes)  # one legacy update per event, none lost, none twice
    rows = world.requests()
    assert {rows[e.id].state for e in envelopes} == {"applied"}
    by_key: dict[str, list[Any]] = defaultdict(list)
    for row in sorted(rows.values(), key=lambda r: (r.key, r.sequence)):
        by_key[row.key].append(row.applied_at)
    assert all(times == sorted(times) for times in by_key.values())  # key order held across the crashes
    assert all(world.legacy_customer(c)["EMAIL"] == f"k{c}.s30@example.com" for c in keys)


def test_apply_events_refuses_to_start_without_a_kafka_bootstrap(world: World) -> None:
    env = {**world.env(), "STRANGLER_KAFKA_BOOTSTRAP": None}
    result = CliRunner().invoke(apply_events, [], env=env)
    assert result.exit_code == 1 and "STRANGLER_KAFKA_BOOTSTRAP is not set" in result.output
