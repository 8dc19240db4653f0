"""Exactly once under crashes: SIGKILL at random points, a source restart mid-stream, failover to a standby."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from core.pgcluster import PgCluster, start_cluster
from core.procs import wait_until
from tests.replication.support import Pair, ReplicatorProcess, assert_target_equals_source, seed_sandbox

PAY_MANY = """
CREATE PROCEDURE pay_many(first int, n int, customers int) LANGUAGE plpgsql AS $$
DECLARE dr text; cr text; amt bigint; id text;
BEGIN
  FOR i IN first .. first + n - 1 LOOP
    dr := lpad((i % customers + 1)::text, 10, '0');
    cr := lpad(((i * 7 + 3) % customers + 1)::text, 10, '0');
    IF dr = cr THEN cr := lpad(((i + 1) % customers + 1)::text, 10, '0'); END IF;
    amt := 1 + i % 500;
    id := 'P' || lpad(i::text, 9, '0');
    INSERT INTO cbs.payments VALUES (id, 'R' || i, dr, cr, amt, 'EUR', 'PSTD', '00', '20240101', '120000', '');
    INSERT INTO cbs.ledger (payid, acctno, amtcents, postdt)
      VALUES (id, dr, -amt, '20240101'), (id, cr, amt, '20240101');
    UPDATE cbs.acctmast SET curbal = curbal + CASE acctno WHEN dr THEN -amt ELSE amt END WHERE acctno IN (dr, cr);
    COMMIT;
  END LOOP;
END $$;
"""
# One statement, one snapshot: a half-applied payment would show as a broken sum or an odd ledger.
INVARIANT = """
SELECT (SELECT count(*) FROM cloud.accounts), (SELECT sum(balance) FROM cloud.accounts),
       (SELECT count(*) FROM cloud.legacy_payments), (SELECT count(*) FROM cloud.legacy_ledger_entries),
       (SELECT coalesce(sum(amount), 0) FROM cloud.legacy_ledger_entries)
"""
CHANGES_PER_PAYMENT = 5  # a payment, two ledger rows, two balances


class Writer(threading.Thread):
    """Run payments in chunks on the source; tolerate a source restart by reconnecting."""

    def __init__(self, pair: Pair, payments: int, customers: int, chunk: int = 250) -> None:
        super().__init__(daemon=True)
        self.pair, self.payments, self.customers, self.chunk = pair, payments, customers, chunk
        self.done = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while self.done < self.payments:
                try:
                    with self.pair.connect("source") as conn:
                        while self.done < self.payments:
                            n = min(self.chunk, self.payments - self.done)
                            conn.execute("CALL pay_many(%s, %s, %s)", (self.done, n, self.customers))
                            self.done += n
                except psycopg.OperationalError:
                    # The source went away mid-chunk: go on after what it has committed.
                    self.done = self._committed()
        except BaseException as exc:
            self.error = exc

    def _committed(self) -> int:
        def count() -> int | None:
            try:
                return int(self.pair.sql("source", "SELECT count(*) FROM cbs.payments")[0][0])
            except psycopg.OperationalError:
                return None

        wait_until(lambda: count() is not None, 30, 0.1, "the source to come back")
        return count() or 0


class Sampler(threading.Thread):
    """Check the ledger invariant on the target over and over while replication runs."""

    def __init__(self, pair: Pair, customers: int, total: Decimal) -> None:
        super().__init__(daemon=True)
        self.pair, self.customers, self.total = pair, customers, total
        self.samples, self.violations = 0, []  # type: ignore[var-annotated]
        self.stop_event = threading.Event()

    def run(self) -> None:
        with self.pair.connect("target") as conn:
            while not self.stop_event.wait(0.01):
                if conn.execute("SELECT to_regclass('cloud.legacy_ledger_entries')").fetchone()[0] is None:
                    continue
                accounts, balance, payments, entries, ledger_sum = conn.execute(INVARIANT).fetchone()  # type: ignore[misc]
                if accounts == 0:
                    continue
                self.samples += 1
                if (accounts, balance, entries, ledger_sum) != (self.customers, self.total, 2 * payments, 0):
                    self.violations.append((accounts, balance, payments, entries, ledger_sum))


def progressed(pair: Pair, proc: ReplicatorProcess) -> None:
    """Wait until a (re)started replicator has applied something new."""
    applied = pair.applied_lsn()
    wait_until(lambda: pair.applied_lsn() > applied or proc.proc.poll() is not None, 60, what="progress")
    assert proc.proc.poll() is None, proc.log()[-3000:]


def legacy_total(pair: Pair) -> Decimal:
    return Decimal(pair.sql("source", "SELECT sum(curbal) FROM cbs.acctmast")[0][0]).scaleb(-2)


def test_sigkill_at_random_points_never_loses_or_repeats_a_transaction(
    make_pair: Callable[..., Pair], tmp_path: Path
) -> None:
    customers, payments = 2000, 100_000 // CHANGES_PER_PAYMENT
    pair = make_pair(customers=customers)
    pair.sql("source", PAY_MANY)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    sampler = Sampler(pair, customers, legacy_total(pair))
    sampler.start()
    writer = Writer(pair, payments, customers)
    kills = 0
    proc: ReplicatorProcess | None = None
    try:
        # The first crash hits the initial snapshot; the next ones land wherever the stream happens to be.
        proc = ReplicatorProcess(pair, tmp_path / "replicator.log", "--batch-ms", str(rng.choice([5, 50, 200])))
        proc.wait_log(r"snapshot: copying cbs\.custmast")
        writer.start()
        proc.kill()
        kills += 1
        while kills < 6 or writer.is_alive():
            proc = ReplicatorProcess(pair, tmp_path / "replicator.log", "--batch-ms", str(rng.choice([5, 50, 200])))
            progressed(pair, proc)
            wait_until(lambda: rng.random() < 0.15, 5, 0.02, "a random moment")
            proc.kill()
            kills += 1
        assert writer.error is None and writer.done == payments
        proc = last = ReplicatorProcess(pair, tmp_path / "replicator.log")
        pair.wait_caught_up(180, alive=lambda: last.proc.poll() is None or pytest.fail(last.log()[-3000:]))
        assert proc.stop() == 0
    finally:
        sampler.stop_event.set()
        sampler.join()
        if proc is not None:
            proc.kill()
    counts = assert_target_equals_source(pair)
    assert counts["cloud.legacy_payments"] == payments and counts["cloud.legacy_ledger_entries"] == 2 * payments
    assert kills >= 6, f"seed {seed}"
    assert sampler.violations == [], f"seed {seed}"
    assert sampler.samples > 20, f"seed {seed}"
    assert "Traceback" not in last.log()


@pytest.fixture
def own_cluster() -> Iterator[PgCluster]:
    """A cluster of the test's own, to restart without disturbing anyone else's databases."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_a_source_restart_mid_stream_is_survived(
    own_cluster: PgCluster, new_database: Callable[[str], str], tmp_path: Path
) -> None:
    pair = seed_sandbox(Pair(own_cluster.create_database("legacy"), new_database("dst")), 500)
    pair.sql("source", PAY_MANY)
    writer = Writer(pair, 3000, 500, chunk=50)
    proc = ReplicatorProcess(pair, tmp_path / "replicator.log")
    try:
        proc.wait_log(r"snapshot done", 60)
        writer.start()
        wait_until(lambda: writer.done >= 1000, 60, what="payments before the restart")
        own_cluster.restart("immediate")
        writer.join(120)
        assert writer.error is None and writer.done == 3000
        pair.wait_caught_up(timeout=120, alive=lambda: proc.proc.poll() is None or pytest.fail(proc.log()[-3000:]))
    finally:
        code = proc.stop()
    assert code == 0, proc.log()[-3000:]
    assert "resuming from the checkpoint" in proc.log()
    counts = assert_target_equals_source(pair)
    assert counts["cloud.legacy_payments"] == 3000
    pair.sql("source", "SELECT pg_drop_replication_slot(%s)", (pair.slot,))


def test_a_standby_takes_over_when_the_active_replicator_dies(make_pair: Callable[..., Pair], tmp_path: Path) -> None:
    pair = make_pair(customers=300)
    pair.sql("source", PAY_MANY)
    first = ReplicatorProcess(pair, tmp_path / "a.log")
    second = ReplicatorProcess(pair, tmp_path / "b.log")
    procs = [first, second]
    try:

        def settled() -> bool:
            assert all(p.proc.poll() is None for p in procs), [p.log()[-2000:] for p in procs]
            return all("active:" in p.log() or "standby:" in p.log() for p in procs)

        wait_until(settled, 30, what="roles")
        active = [p for p in procs if "active:" in p.log()]
        standby = [p for p in procs if "standby:" in p.log()]
        assert len(active) == 1 and len(standby) == 1, [p.log()[-500:] for p in procs]
        pair.sql("source", "CALL pay_many(0, 200, 300)")
        pair.wait_caught_up()
        active[0].kill()
        pair.sql("source", "CALL pay_many(200, 200, 300)")
        standby[0].wait_log("active:", 60)
        pair.wait_caught_up(alive=lambda: standby[0].proc.poll() is None or pytest.fail(standby[0].log()[-3000:]))
    finally:
        for proc in procs:
            proc.kill()
    counts = assert_target_equals_source(pair)
    assert counts["cloud.legacy_payments"] == 400
