"""Replication benchmark: `strangler replicate` against pg_recvlogical on the same WAL, snapshot against a COPY pipe,
and end-to-end lag (source commit -> visible in the target) at steady change rates. Run: python -m bench.replication
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import psycopg

from bench.cpu import machine_busy_seconds
from bench.loadgen import percentile
from bench.report import describe_machine
from core.pgcluster import PgCluster, find_pg_bin, start_cluster
from sandbox.cloud.schema import init_db as init_cloud
from sandbox.legacy.schema import init_db as init_legacy

REPO = Path(__file__).resolve().parent.parent
PUBLICATION = "strangler_legacy"  # the sandbox mapping's
LEDGER = "INSERT INTO cbs.ledger (payid, acctno, amtcents, postdt) SELECT 'P1', '0000000001', g, '20240101' "


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class Pair:
    """A legacy database and a cloud database on the bench cluster."""

    cluster: PgCluster
    name: str

    def __post_init__(self) -> None:
        self.source_url = self.cluster.create_database(f"{self.name}_legacy")
        self.target_url = self.cluster.create_database(f"{self.name}_cloud")
        self.slot, self.ref_slot = f"s_{self.name}", f"ref_{self.name}"  # slots are per cluster

    def conn(self, side: str) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.cluster.dsn(f"{self.name}_{side}"), autocommit=True)
        conn.execute("SET synchronous_commit = on")  # the walsender only sends flushed WAL
        return conn

    def one(self, side: str, sql: str, params: Any = None) -> Any:
        with self.conn(side) as conn:
            return conn.execute(sql, params).fetchone()[0]  # type: ignore[index]

    def applied(self) -> int:
        found = self.one("cloud", "SELECT coalesce(max(lsn - '0/0'::pg_lsn), 0) FROM strangler_cdc.checkpoints")
        return int(found)

    def source_lsn(self) -> int:
        return int(self.one("legacy", "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))

    def drop(self) -> None:
        """Drop the pair's slots and databases, so that later measurements share the cluster with nothing."""
        with psycopg.connect(self.cluster.dsn(), autocommit=True) as conn:
            conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                         "WHERE slot_name IN (%s, %s)", (self.slot, self.ref_slot))  # fmt: skip
            for side in ("legacy", "cloud"):
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}_{side}" WITH (FORCE)')


class Replicator:
    """`strangler replicate run` as a child process, its log in memory."""

    def __init__(self, pair: Pair, *extra: str) -> None:
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-replicate-{pair.name}.log"
        argv = [sys.executable, "-m", "cli.replicate", "run", "--source-url", pair.source_url, "--target-url",
                pair.target_url, "--slot", pair.slot, "--progress", "plain", *extra]  # fmt: skip
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"replicator: no {pattern!r}:\n{self.text()[-3000:]}")
            time.sleep(0.005)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(30)


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not met in time")
        time.sleep(interval)


def prepare(cluster: PgCluster, name: str) -> Pair:
    """A pair with the sandbox schemas, both slots made before any change so they see the same WAL."""
    pair = Pair(cluster, name)
    init_legacy(pair.source_url, 10)
    init_cloud(pair.target_url, 0)
    with pair.conn("legacy") as conn:
        conn.execute("INSERT INTO cbs.payments VALUES ('P1', 'R1', '0000000001', '0000000002', 1, 'EUR', 'PSTD', "
                     "'00', '20240101', '120000', '')")  # fmt: skip
    first = Replicator(pair)
    first.wait_for("snapshot done")
    first.stop()
    with pair.conn("legacy") as conn:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (pair.ref_slot,))
    return pair


def drain(pair: Pair, rows: int) -> dict[str, Any]:
    """Drain the same WAL with pg_recvlogical (to /dev/null) and with strangler replicate (into the target)."""
    end = pair.source_lsn()
    end_text = pair.one("legacy", "SELECT pg_current_wal_lsn()::text")
    info = pair.cluster
    busy0, t0 = machine_busy_seconds(), time.monotonic()
    subprocess.run(
        [str(find_pg_bin() / "pg_recvlogical"), "-h", "127.0.0.1", "-p", str(info.port), "-U", "postgres",
         "-d", f"{pair.name}_legacy", "-S", pair.ref_slot, "--start", "-E", end_text, "-f", "/dev/null",
         "-P", "pgoutput", "-o", "proto_version=1", "-o", f"publication_names={PUBLICATION}", "--no-loop"],
        check=True, capture_output=True,
    )  # fmt: skip
    ref_s, ref_busy = time.monotonic() - t0, machine_busy_seconds() - busy0
    ours = Replicator(pair)
    ours.wait_for("resuming slot")
    busy0, t0 = machine_busy_seconds(), time.monotonic()
    wait_for(lambda: pair.applied() >= end, 600, 0.005)
    ours_s, ours_busy = time.monotonic() - t0, machine_busy_seconds() - busy0
    ours.stop()
    applied = pair.one("cloud", "SELECT count(*) FROM cloud.legacy_ledger_entries")
    assert applied == rows, f"applied {applied} of {rows}"
    return {
        "rows": rows, "pg_recvlogical_s": round(ref_s, 3), "pg_recvlogical_rows_per_s": round(rows / ref_s),
        "strangler_s": round(ours_s, 3), "strangler_rows_per_s": round(rows / ours_s),
        "ratio": round(ref_s / ours_s, 3), "cores_busy_ref": round(ref_busy / ref_s, 2),
        "cores_busy_strangler": round(ours_busy / ours_s, 2),
    }  # fmt: skip


def shape(cluster: PgCluster, name: str, txs: int, per_tx: int, repeat: int) -> dict[str, Any]:
    """Drain `txs` transactions of `per_tx` rows `repeat` times; report the median run and the range of ratios."""
    runs = []
    for attempt in range(repeat):
        pair = prepare(cluster, f"{name}{attempt}")
        with pair.conn("legacy") as conn:
            if txs == 1:
                conn.execute(LEDGER + f"FROM generate_series(1, {per_tx}) g")
            else:
                conn.execute(f"DO $$ BEGIN FOR i IN 1..{txs} LOOP {LEDGER} FROM generate_series(1, {per_tx}) g; "
                             "COMMIT; END LOOP; END $$")  # fmt: skip
        runs.append({**drain(pair, txs * per_tx), "transactions": txs, "load": round(os.getloadavg()[0], 1)})
        pair.drop()
        log(f"  {runs[-1]}")
    runs.sort(key=lambda r: r["ratio"])
    return {**runs[len(runs) // 2], "ratios": [r["ratio"] for r in runs]}


def _stamp(text: str, pattern: str) -> float:
    line = next(line for line in text.splitlines() if re.search(pattern, line))
    stamp = time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")
    return time.mktime(stamp) + int(line[20:23]) / 1000


def snapshot_vs_copy(cluster: PgCluster, customers: int, repeat: int) -> dict[str, Any]:
    """Copy custmast and acctmast by a psql COPY pipe and by the replicator's snapshot, `repeat` times; the median."""
    runs = []
    for attempt in range(repeat):
        runs.append(_snapshot_once(cluster, customers, f"snap{attempt}"))
        log(f"  {runs[-1]}")
    runs.sort(key=lambda r: r["ratio"])
    return {**runs[len(runs) // 2], "ratios": [r["ratio"] for r in runs]}


def _snapshot_once(cluster: PgCluster, customers: int, name: str) -> dict[str, Any]:
    pair = Pair(cluster, name)
    init_legacy(pair.source_url, customers)
    init_cloud(pair.target_url, 0)
    pg_bin, port = find_pg_bin(), cluster.port
    psql = f"{pg_bin}/psql -h 127.0.0.1 -p {port} -U postgres -v ON_ERROR_STOP=1 -q"
    with pair.conn("cloud") as conn:
        conn.execute("CREATE SCHEMA cbs")
    dump = f"{pg_bin}/pg_dump -h 127.0.0.1 -p {port} -U postgres -s -t cbs.custmast -t cbs.acctmast"
    subprocess.run(
        f"{dump} {pair.name}_legacy | {psql} -d {pair.name}_cloud", shell=True, check=True, capture_output=True
    )
    t0 = time.monotonic()
    for table in ("cbs.custmast", "cbs.acctmast"):
        subprocess.run(f"{psql} -d {pair.name}_legacy -c 'COPY {table} TO STDOUT' | "
                       f"{psql} -d {pair.name}_cloud -c 'COPY {table} FROM STDIN'", shell=True, check=True)  # fmt: skip
    pipe_s = time.monotonic() - t0
    ours = Replicator(pair)
    ours.wait_for("snapshot done")
    text = ours.text()
    ours.stop()
    ours_s = _stamp(text, "snapshot done") - _stamp(text, "copying the snapshot")
    pair.drop()
    rows = 2 * customers
    return {"rows": rows, "copy_pipe_s": round(pipe_s, 3), "copy_pipe_rows_per_s": round(rows / pipe_s),
            "strangler_s": round(ours_s, 3), "strangler_rows_per_s": round(rows / ours_s),
            "ratio": round(pipe_s / ours_s, 3)}  # fmt: skip


def lag_at(cluster: PgCluster, rate: int, seconds: float, per_tx: int = 10) -> dict[str, Any]:
    """Commit `rate` changes/s (transactions of `per_tx` rows) and time each until it is visible in the target."""
    pair = prepare(cluster, f"lag_{rate}")
    ours = Replicator(pair)
    ours.wait_for("resuming slot")
    commits: list[tuple[int, float]] = []
    seen: list[tuple[float, int]] = []
    stop = threading.Event()

    def poll() -> None:
        with pair.conn("cloud") as conn:
            while not stop.is_set():
                top = conn.execute("SELECT coalesce(max(id), 0) FROM cloud.legacy_ledger_entries").fetchone()[0]  # type: ignore[index]
                seen.append((time.monotonic(), int(top)))
                time.sleep(0.002)

    poller = threading.Thread(target=poll)
    poller.start()
    tx_rate = rate / per_tx
    with pair.conn("legacy") as conn:
        start = time.monotonic()
        for i in range(int(tx_rate * seconds)):
            due = start + i / tx_rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            top = conn.execute(LEDGER + f"FROM generate_series(1, {per_tx}) g RETURNING entryid").fetchall()
            commits.append((max(r[0] for r in top), time.monotonic()))
        offered_s = time.monotonic() - start
    wait_for(lambda: bool(seen) and seen[-1][1] >= commits[-1][0], 60)
    stop.set()
    poller.join()
    ours.stop()
    pair.drop()
    lags, cursor = [], 0
    for entry, committed in commits:
        while seen[cursor][1] < entry:
            cursor += 1
        lags.append(max(0.0, seen[cursor][0] - committed) * 1000)
    lags.sort()
    return {"offered_changes_per_s": rate, "achieved_changes_per_s": round(len(commits) * per_tx / offered_s),
            "transactions": len(commits), "p50_ms": round(percentile(lags, 50), 1),
            "p99_ms": round(percentile(lags, 99), 1), "max_ms": round(lags[-1], 1)}  # fmt: skip


def _range(shape: dict[str, Any]) -> str:
    return ", ".join(f"{r:.2f}" for r in shape["ratios"])


def markdown(result: dict[str, Any]) -> str:
    """Render the run as the `## Replication` section of BENCHMARKS.md."""
    m, one, small, snap = result["machine"], result["one_tx"], result["small_tx"], result["snapshot"]
    lines = [
        "## Replication", "",
        f"`python -m bench.replication` on {m['nproc']} x {m['cpu_model']}, {m['memory_gib']} GiB, {m['os']}, "
        f"PostgreSQL {m['postgresql']}, Python {m['python']}; source and target are two databases of one throwaway "
        "cluster (fsync off, commits flushed: `synchronous_commit=on` in the writers), sandbox mapping "
        "(`cbs.ledger` -> `cloud.legacy_ledger_entries` with cents->decimal, digits->int, YYYYMMDD->date). "
        f"Load average before the run: {result['load_before']}.", "",
        "| measure | reference | strangler replicate | ratio | target |", "|---|---|---|---|---|",
        f"| {one['rows']:,} rows in one transaction | pg_recvlogical {one['pg_recvlogical_rows_per_s']:,} rows/s | "
        f"{one['strangler_rows_per_s']:,} rows/s | {one['ratio']:.2f}x (runs: {_range(one)}) | >= 0.35x |",
        f"| {small['transactions']:,} transactions of {small['rows'] // small['transactions']} rows | pg_recvlogical "
        f"{small['pg_recvlogical_rows_per_s']:,} rows/s | {small['strangler_rows_per_s']:,} rows/s | "
        f"{small['ratio']:.2f}x (runs: {_range(small)}) | >= 0.35x |",
        f"| snapshot of {snap['rows']:,} rows (custmast + acctmast) | COPY pipe {snap['copy_pipe_rows_per_s']:,} "
        f"rows/s | {snap['strangler_rows_per_s']:,} rows/s | {snap['ratio']:.2f}x (runs: {_range(snap)}) | >= 0.5x |",
    ]  # fmt: skip
    for lag in result["lag"]:
        lines.append(
            f"| lag at {lag['offered_changes_per_s']:,} changes/s (achieved {lag['achieved_changes_per_s']:,}) | | "
            f"p50 {lag['p50_ms']} ms, p99 {lag['p99_ms']} ms, max {lag['max_ms']} ms | | "
            + ("p99 <= 250 ms |" if lag["offered_changes_per_s"] == 1000 else "- |")
        )
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--rows", default=200_000, show_default=True, help="rows of the one-transaction shape")
@click.option("--txs", default=20_000, show_default=True, help="transactions of the small-transaction shape")
@click.option("--tx-rows", default=10, show_default=True, help="rows per small transaction")
@click.option("--customers", default=100_000, show_default=True, help="customers (and accounts) to snapshot")
@click.option("--lag-seconds", default=15.0, show_default=True, help="seconds of steady load per lag rate")
@click.option("--rates", default="1000,5000", show_default=True, help="changes/s for the lag measurements")
@click.option("--repeat", default=3, show_default=True, help="runs per drain shape (the median is reported)")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="also save the figures as JSON")
@click.option("--append", type=click.Path(path_type=Path), help="append the markdown section to this file")
def main(rows: int, txs: int, tx_rows: int, customers: int, lag_seconds: float, rates: str, repeat: int,
         json_path: Path | None, append: Path | None) -> None:  # fmt: skip
    """Run every measurement on one throwaway cluster and print the figures (and the BENCHMARKS.md section)."""
    result: dict[str, Any] = {"machine": describe_machine(), "load_before": round(os.getloadavg()[0], 2)}
    cluster = start_cluster()
    try:
        log("shape 1: one transaction")
        result["one_tx"] = shape(cluster, "one", 1, rows, repeat)
        log("shape 2: small transactions")
        result["small_tx"] = shape(cluster, "small", txs, tx_rows, repeat)
        log("snapshot vs COPY pipe")
        result["snapshot"] = snapshot_vs_copy(cluster, customers, repeat)
        result["lag"] = []
        for rate in (int(r) for r in rates.split(",")):
            log(f"lag at {rate} changes/s")
            result["lag"].append(lag_at(cluster, rate, lag_seconds))
            log(f"  {result['lag'][-1]}")
    finally:
        cluster.stop()
    section = markdown(result)
    print(section)
    if json_path:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
    if append:
        with append.open("a") as out:
            out.write("\n" + section)


if __name__ == "__main__":
    main()
