"""The replication core stays pure (no sockets, no environment), and the sandbox cloud service reads what CDC wrote."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import sqlalchemy as sa

from sandbox.cloud.store import CloudStore
from tests.replication.support import REPO, Pair, ThreadedReplicator
from tests.test_architecture import imported_packages

PURE = ("pgoutput", "pgtypes", "transforms", "copytext", "config", "plan", "stream")
IO = {"socket", "requests", "sqlalchemy", "psycopg", "psycopg2", "os", "subprocess", "confluent_kafka", "select"}


def test_the_core_of_replication_does_no_io() -> None:
    for name in PURE:
        path = REPO / "replication" / f"{name}.py"
        assert not imported_packages(path) & IO, f"{path.name} does I/O"
        internal = {line.split()[1] for line in path.read_text().splitlines() if line.startswith("from replication.")}
        assert {m.removeprefix("replication.") for m in internal} <= set(PURE), f"{path.name} imports {internal}"


def test_the_sandbox_cloud_service_reads_the_replicated_store(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(customers=25)
    replicator = ThreadedReplicator(pair.options())
    try:
        replicator.wait_for(lambda: pair.applied_lsn() > 0, "the snapshot")
        pair.sql("source", "UPDATE cbs.custmast SET email = 'moved@example.com' WHERE custno = '0000000003'")
        pair.wait_caught_up(alive=replicator.alive)
    finally:
        replicator.stop()
    engine = sa.create_engine(pair.target_url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        store = CloudStore(engine)
        cents = pair.sql("source", "SELECT curbal FROM cbs.acctmast WHERE acctno = '0000000007'")[0][0]
        assert store.balance(7)["balance"] == str(Decimal(cents).scaleb(-2))
        assert store.profile(3)["email"] == "moved@example.com"
    finally:
        engine.dispose()
