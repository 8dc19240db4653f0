"""`strangler replicate status` and the control plane's replication_status row tell slot, LSNs, lag and WAL kept."""

from __future__ import annotations

import json
from collections.abc import Callable

import sqlalchemy as sa
from click.testing import CliRunner

from cli.replicate import replicate
from core.db import replication_status
from replication.status import StatusSink, StatusWriter
from tests.replication.support import Pair, ThreadedReplicator


def test_status_shows_slot_lsns_lag_and_retained_wal(
    make_pair: Callable[..., Pair], new_database: Callable[[str], str]
) -> None:
    pair = make_pair(customers=50)
    control = new_database("control")
    writer = StatusWriter(control)
    replicator = ThreadedReplicator(pair.options(status_s=0.1), sink=StatusSink(writer, pair.slot))
    try:
        replicator.wait_for(lambda: pair.applied_lsn() > 0, "the snapshot")
        pair.sql("source", "UPDATE cbs.acctmast SET curbal = curbal + 1 WHERE acctno = '0000000001'")
        pair.wait_caught_up(alive=replicator.alive)
        engine = sa.create_engine(control, poolclass=sa.pool.NullPool)

        def row() -> dict[str, object] | None:
            with engine.connect() as conn:
                found = conn.execute(sa.select(replication_status)).mappings().first()
                return dict(found) if found else None

        replicator.wait_for(lambda: (row() or {}).get("applied_lsn") is not None, "a status row")
        status = row()
        assert status is not None and status["slot"] == pair.slot
        assert isinstance(status["lag_bytes"], int) and status["lag_bytes"] >= 0
        assert isinstance(status["lag_seconds"], float) and status["lag_seconds"] < 60

        argv = ["status", "--source-url", pair.source_url, "--target-url", pair.target_url, "--slot", pair.slot,
                "--control-url", control, "--json"]  # fmt: skip
        result = CliRunner().invoke(replicate, argv)
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["exists"] is True and report["active_pid"] is not None
        assert report["applied_lsn"] and report["confirmed_lsn"] and report["source_lsn"]
        assert report["retained_wal_bytes"] >= 0 and report["lag_bytes"] >= 0 and report["reported_at"]
        table = CliRunner().invoke(replicate, argv[:-1])
        assert table.exit_code == 0 and "retained wal bytes" in table.output
        engine.dispose()
    finally:
        replicator.stop()
        writer.close()


def test_status_of_a_missing_slot_is_refused(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(customers=1)
    result = CliRunner().invoke(replicate, ["status", "--source-url", pair.source_url, "--target-url",
                                            pair.target_url, "--slot", "nope"])  # fmt: skip
    assert result.exit_code == 1 and "slot nope does not exist" in result.output
