"""`strangler reconcile` against real PostgreSQL: planted drift found exactly, zero drift under load, repair."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.reconcile import reconcile
from parallel_run.reconcile.engine import reconcile as run_reconcile
from parallel_run.reconcile.model import Options
from replication.config import load_mapping
from replication.transforms import BUILTIN
from tests.replication.support import (
    Pair,
    ReplicatorProcess,
    ThreadedReplicator,
    assert_target_equals_source,
    seed_sandbox,
)
from tests.replication.test_crash import PAY_MANY


@pytest.fixture
def make_pair(new_database: Callable[[str], str]) -> Iterator[Callable[..., Pair]]:
    """Source/target pairs seeded as the sandbox; their slots are dropped afterwards."""
    made: list[Pair] = []

    def make(customers: int) -> Pair:
        pair = seed_sandbox(Pair(new_database("rsrc"), new_database("rdst")), customers)
        pair.sql("source", PAY_MANY)
        made.append(pair)
        return pair

    yield make
    for pair in made:
        pair.drop_slot()


def run_cli(pair: Pair, *args: str) -> Result:
    base = ["--source-url", pair.source_url, "--target-url", pair.target_url, "--slot", pair.slot,
            "--progress", "plain", "--wait-timeout", "20"]  # fmt: skip
    return CliRunner().invoke(reconcile, [*base, *args], catch_exceptions=False)


def found(report: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(t["target"], r["key"]): r["kind"] for t in report["tables"] for r in t["rows"]}


def plant(pair: Pair) -> dict[tuple[str, str], str]:
    """Plant exactly 100 differences on the cloud side, spread over tables and key ranges; return them."""
    want: dict[tuple[str, str], str] = {}

    def mark(table: str, keys: list[Any], kind: str) -> None:
        want.update({(table, str(k)): kind for k in keys})

    c, a, p, e = "cloud.customers", "cloud.accounts", "cloud.legacy_payments", "cloud.legacy_ledger_entries"
    statements: list[tuple[str, list[Any], str, str]] = [
        (c, [3, 150, 420, 690, 999], "missing", "DELETE FROM cloud.customers WHERE id = ANY(%s)"),
        (c, [1001, 1500, 2000, 0, 77777], "extra",
         "INSERT INTO cloud.customers (id, name, email, updated_at) "
         "SELECT k, 'Ghost', 'g@x.io', now() FROM unnest(%s::bigint[]) k"),
        (c, [10, 300, 600, 900, 1000], "different",
         "UPDATE cloud.customers SET email = 'changed@example.org' WHERE id = ANY(%s)"),
        (c, [20, 320], "different", "UPDATE cloud.customers SET name = name || ' Jr' WHERE id = ANY(%s)"),
        (c, [33], "different",
         "UPDATE cloud.customers SET updated_at = updated_at + interval '1 second' WHERE id = ANY(%s)"),
        (a, [7, 507, 907], "missing", "DELETE FROM cloud.accounts WHERE id = ANY(%s)"),
        (a, [5000, 6000], "extra",
         "INSERT INTO cloud.accounts SELECT k, 1, 'EUR', 1.00, now() FROM unnest(%s::bigint[]) k"),
        (a, [11, 211, 411, 611, 811], "different",
         "UPDATE cloud.accounts SET balance = balance + 0.01 WHERE id = ANY(%s)"),
        (a, [12], "different", "UPDATE cloud.accounts SET currency = 'XXX' WHERE id = ANY(%s)"),
        (p, [f"P{i:09d}" for i in range(0, 300, 30)], "missing",
         "DELETE FROM cloud.legacy_payments WHERE id = ANY(%s)"),
        (p, [f"P{i:09d}" for i in range(7, 300, 30)], "different",
         "UPDATE cloud.legacy_payments SET status = 'rejected' WHERE id = ANY(%s)"),
        (p, ["A1", "P000000150x", "Q1", "Z9", "P"], "extra",
         "INSERT INTO cloud.legacy_payments SELECT k, 'R-' || k, 1, 2, 1.00, 'EUR', 'posted', '00', '2024-01-01', "
         "'12:00', '' FROM unnest(%s::text[]) k"),
        (e, list(range(1, 600, 40)), "missing", "DELETE FROM cloud.legacy_ledger_entries WHERE id = ANY(%s)"),
        (e, list(range(22, 600, 40)), "different",
         "UPDATE cloud.legacy_ledger_entries SET amount = -amount WHERE id = ANY(%s)"),
        (e, [*range(601, 611), 5000, 9000, 100000, -5, 1_000_000, 2_000_000], "extra",
         "INSERT INTO cloud.legacy_ledger_entries SELECT k, 'P000000001', 1, 1.00, '2024-01-01' "
         "FROM unnest(%s::bigint[]) k"),
    ]  # fmt: skip
    for table, keys, kind, sql in statements:
        pair.sql("target", sql, (keys,))
        mark(table, keys, kind)
    assert len(want) == 100
    return want


def test_finds_exactly_the_planted_differences_then_repair_leaves_none(
    make_pair: Callable[..., Pair], tmp_path: Path
) -> None:
    pair = make_pair(1000)
    pair.sql("source", "CALL pay_many(0, 300, 1000)")
    replicator = ThreadedReplicator(pair.options())
    try:
        pair.wait_caught_up(alive=replicator.alive)
        clean = run_cli(pair, "--format", "json")
        assert clean.exit_code == 0, clean.output
        assert json.loads(clean.stdout)["drift"] == 0
        want = plant(pair)

        out = tmp_path / "report.json"
        result = run_cli(pair, "--format", "json", "--out", str(out))
        assert result.exit_code == 1, result.output
        report = json.loads(out.read_text())
        assert found(report) == want
        assert report["drift"] == 100
        rows = {(t["target"], r["key"]): r for t in report["tables"] for r in t["rows"]}
        email = rows[("cloud.customers", "10")]["columns"]
        assert [c["column"] for c in email] == ["email"]
        assert email[0]["cloud"] == "c***@e***.org"  # masked
        assert [c["column"] for c in rows[("cloud.legacy_payments", "P000000007")]["columns"]] == ["status"]
        counts = {t["target"]: (t["legacy_rows"], t["cloud_rows"]) for t in report["tables"]}
        assert counts["cloud.customers"] == (1000, 1000)
        assert counts["cloud.legacy_ledger_entries"] == (600, 600 - 15 + 16)

        csv_out = run_cli(pair, "--format", "csv", "--table", "customers")
        assert csv_out.exit_code == 1
        assert csv_out.stdout.splitlines()[0] == "table,key,kind,column,legacy,cloud"
        assert len(csv_out.stdout.splitlines()) == 1 + 18

        text = run_cli(pair, "--table", "cbs.acctmast")
        assert text.exit_code == 1
        assert "DRIFT: 11 rows differ" in text.stdout

        repaired = run_cli(pair, "--repair", "--format", "json")
        assert repaired.exit_code == 0, repaired.output
        assert json.loads(repaired.stdout)["drift"] == 0
        pair.wait_caught_up(alive=replicator.alive)
    finally:
        replicator.stop()
    assert_target_equals_source(pair)


def test_a_transform_without_sql_is_compared_in_python(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(50)
    replicator = ThreadedReplicator(pair.options())
    try:
        pair.wait_caught_up(alive=replicator.alive)
        pair.sql("target", "UPDATE cloud.accounts SET balance = balance + 1 WHERE id IN (5, 40)")
        pair.sql("target", "DELETE FROM cloud.accounts WHERE id = 17")

        def no_sql(column: str) -> str:
            raise NotImplementedError

        python_cents = dataclasses.replace(BUILTIN["cents_to_decimal"], name="python_cents", sql=no_sql)
        mapping = load_mapping()
        accounts = mapping.tables["cbs.acctmast"]
        columns = {
            **accounts.columns,
            "curbal": dataclasses.replace(accounts.columns["curbal"], transform=python_cents),
        }
        mapping = dataclasses.replace(mapping, tables={"cbs.acctmast": dataclasses.replace(accounts, columns=columns)})
        options = Options(pair.source, pair.target, mapping, pair.slot, wait_timeout_s=20)
        result = run_reconcile(options)
    finally:
        replicator.stop()
    (table,) = result.tables
    assert table.mode == "python"
    assert "curbal" in table.note
    assert {(d.key, d.kind) for d in table.diffs} == {("5", "different"), ("40", "different"), ("17", "missing")}


class Payments(threading.Thread):
    """Run payments on the legacy side in small transactions, paced, until stopped."""

    FIRST = 1_000_000  # payment numbers above any the test preloads
    PAUSE_S = 0.05  # a steady load the replicator keeps up with, not a flood that outruns it on a busy machine

    def __init__(self, pair: Pair, customers: int) -> None:
        super().__init__(daemon=True)
        self.pair, self.customers = pair, customers
        self.stopping = threading.Event()
        self.done = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.pair.connect("source") as conn:
                while not self.stopping.wait(self.PAUSE_S):
                    conn.execute("CALL pay_many(%s, 20, %s)", (self.FIRST + self.done, self.customers))
                    self.done += 20
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
        if self.error is not None:
            raise self.error


def test_reports_zero_drift_while_the_replicator_applies_a_write_load(
    make_pair: Callable[..., Pair], tmp_path: Path
) -> None:
    pair = make_pair(200)
    pair.sql("source", "CALL pay_many(100000, 200, 200)")
    proc = ReplicatorProcess(pair, tmp_path / "replicator.log")
    writer = Payments(pair, 200)
    try:
        pair.wait_caught_up(alive=lambda: proc.proc.poll() is None or pytest.fail(proc.log()[-2000:]))
        writer.start()
        pair.wait_caught_up()  # the load is flowing through the replicator
        start = writer.done
        result = run_cli(pair, "--format", "json")
        assert writer.done > start, "the load kept running through the comparison"
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["drift"] == 0
    finally:
        writer.stop()
        proc.stop()


def test_bad_input_is_one_clear_line(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(0)
    unknown = run_cli(pair, "--table", "cbs.nope", "--no-wait")
    assert unknown.exit_code == 2
    assert "table 'cbs.nope' is not in the mapping; known tables: cbs.custmast (cloud.customers)" in unknown.output
    assert "Traceback" not in unknown.output
    behind = run_cli(pair, "--table", "customers", "--wait-timeout", "0.2")
    assert behind.exit_code == 2
    assert "no checkpoint for slot" in behind.output
    unreachable = CliRunner().invoke(
        reconcile, ["--source-url", "postgresql://postgres@127.0.0.1:1/x", "--target-url", pair.target_url]
    )
    assert unreachable.exit_code == 2
    assert "cannot connect to" in unreachable.output
    assert len(unreachable.output.strip().splitlines()) == 1


def test_empty_tables_reconcile_clean(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(0)
    replicator = ThreadedReplicator(pair.options())
    try:
        pair.wait_caught_up(alive=replicator.alive)
        result = run_cli(pair)
    finally:
        replicator.stop()
    assert result.exit_code == 0, result.output
    assert "no drift" in result.stdout
