"""Reconcile benchmark: `strangler reconcile` (mapping applied) against reladiff (raw columns) on 1,000,000 rows,
identical and with 100 scattered differences, in the same run. Run: python -m bench.reconcile
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import psycopg

from bench.report import describe_machine
from core.pgcluster import PgCluster, start_cluster
from parallel_run.reconcile.engine import reconcile
from parallel_run.reconcile.model import Options
from replication.config import parse_mapping
from replication.source import Conninfo

REPO = Path(__file__).resolve().parent.parent
MAPPING = """
tables:
  bench.acctmast:
    target: cloud.accounts
    columns:
      acctno: {to: id, transform: digits_to_int}
      custno: {to: customer_id, transform: digits_to_int}
      ccy: currency
      curbal: {to: balance, transform: cents_to_decimal}
      opendt: {to: opened_on, transform: yyyymmdd_to_date}
      stat: {to: status, transform: {map: {A: active, C: closed}}}
"""
# The same rows three ways: legacy-shaped (padded keys, cents, YYYYMMDD, codes), cloud-shaped in the cloud store,
# and a cloud-shaped copy in the legacy database for reladiff, which compares raw columns without a mapping.
LEGACY = """
CREATE SCHEMA bench;
CREATE TABLE bench.acctmast (acctno char(10) PRIMARY KEY, custno char(10) NOT NULL, ccy char(3) NOT NULL,
                             curbal bigint NOT NULL, opendt char(8) NOT NULL, stat char(1) NOT NULL);
INSERT INTO bench.acctmast SELECT lpad(i::text, 10, '0'), lpad((i % 100000 + 1)::text, 10, '0'), 'EUR',
       (i::bigint * 7919) % 10000000, to_char(date '2000-01-01' + i % 9000, 'YYYYMMDD'),
       CASE WHEN i % 13 = 0 THEN 'C' ELSE 'A' END
FROM generate_series(1, %(rows)s) i;
CREATE TABLE bench.accounts_raw (id bigint PRIMARY KEY, customer_id bigint NOT NULL, currency char(3) NOT NULL,
                                 balance numeric(18,2) NOT NULL, opened_on date NOT NULL, status text NOT NULL);
INSERT INTO bench.accounts_raw SELECT i, i % 100000 + 1, 'EUR', ((i::bigint * 7919) % 10000000) / 100.0,
       date '2000-01-01' + i % 9000, CASE WHEN i % 13 = 0 THEN 'closed' ELSE 'active' END
FROM generate_series(1, %(rows)s) i;
VACUUM ANALYZE bench.acctmast;
VACUUM ANALYZE bench.accounts_raw;
"""
CLOUD = """
CREATE SCHEMA cloud;
CREATE TABLE cloud.accounts (id bigint PRIMARY KEY, customer_id bigint NOT NULL, currency char(3) NOT NULL,
                             balance numeric(18,2) NOT NULL, opened_on date NOT NULL, status text NOT NULL);
INSERT INTO cloud.accounts SELECT i, i % 100000 + 1, 'EUR', ((i::bigint * 7919) % 10000000) / 100.0,
       date '2000-01-01' + i % 9000, CASE WHEN i % 13 = 0 THEN 'closed' ELSE 'active' END
FROM generate_series(1, %(rows)s) i;
VACUUM ANALYZE cloud.accounts;
"""
COLUMNS = ("customer_id", "currency", "balance", "opened_on", "status")


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def plant(cloud_dsn: str, rows: int, count: int = 100) -> set[int]:
    """Change, delete and insert `count` rows of the cloud table at keys spread over the key space."""
    step = rows // count
    keys = [1 + i * step + (i * 7) % step for i in range(count)]
    with psycopg.connect(cloud_dsn, autocommit=True) as conn:
        changed, deleted, added = keys[0::3], keys[1::3], keys[2::3]
        conn.execute("UPDATE cloud.accounts SET balance = balance + 0.01 WHERE id = ANY(%s)", (changed,))
        conn.execute("DELETE FROM cloud.accounts WHERE id = ANY(%s)", (deleted,))
        conn.execute(
            "INSERT INTO cloud.accounts SELECT k, 1, 'EUR', 1.00, date '2000-01-01', 'active' "
            "FROM unnest(%s::bigint[]) k",
            ([rows + k for k in added],),
        )
        conn.execute("VACUUM ANALYZE cloud.accounts")
    return {*changed, *deleted, *(rows + k for k in added)}


def time_strangler(cluster: PgCluster, tmp: Path) -> tuple[float, int]:
    mapping = parse_mapping(MAPPING, "bench-mapping")
    options = Options(Conninfo.from_url(cluster.url("legacy")), Conninfo.from_url(cluster.url("cloud")), mapping,
                      "none", wait=False)  # fmt: skip
    started = time.perf_counter()
    result = reconcile(options)
    return time.perf_counter() - started, result.drift


def time_reladiff(cluster: PgCluster, threads: int) -> tuple[float, int]:
    from reladiff import connect_to_table, diff_tables

    legacy = connect_to_table(cluster.url("legacy", "postgresql"), "bench.accounts_raw", "id", thread_count=threads)
    cloud = connect_to_table(cluster.url("cloud", "postgresql"), "cloud.accounts", "id", thread_count=threads)
    started = time.perf_counter()
    with diff_tables(legacy, cloud, extra_columns=COLUMNS, threaded=True, max_threadpool_size=threads * 2) as diff:
        found = {row[1][0] for row in diff}
    elapsed = time.perf_counter() - started
    for table in (legacy, cloud):
        table.database.close()
    return elapsed, len(found)


def time_cli(cluster: PgCluster, tmp: Path) -> float:
    mapping = tmp / "mapping.yaml"
    mapping.write_text(MAPPING)
    argv = [sys.executable, "-m", "cli.reconcile", "--source-url", cluster.url("legacy"), "--target-url",
            cluster.url("cloud"), "--config", str(mapping), "--no-wait", "--format", "json",
            "--progress", "plain"]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(argv, cwd=REPO, capture_output=True, check=False)
    return time.perf_counter() - started


def median_of(repeat: int, run: Callable[[], tuple[float, int]]) -> dict[str, Any]:
    runs = [run() for _ in range(repeat)]
    return {"seconds": statistics.median(r[0] for r in runs), "runs": [round(r[0], 3) for r in runs],
            "found": runs[0][1]}  # fmt: skip


@click.command()
@click.option("--rows", default=1_000_000, show_default=True)
@click.option("--repeat", default=3, show_default=True, help="runs per measurement (the median is shown)")
@click.option("--reladiff-threads", default=2, show_default=True, help="reladiff's connection threads per database")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="also save the figures as JSON")
def main(rows: int, repeat: int, reladiff_threads: int, json_path: Path | None) -> None:
    """Time strangler reconcile and reladiff on the same 1M-row tables, identical and with 100 differences."""
    with start_cluster() as cluster:
        tmp = cluster.root
        log(f"loading {rows:,} rows on each side")
        for name, ddl in (("legacy", LEGACY), ("cloud", CLOUD)):
            cluster.create_database(name)
            with psycopg.connect(cluster.dsn(name), autocommit=True) as conn:
                for statement in ddl.replace("%(rows)s", str(rows)).split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
        results: dict[str, Any] = {"machine": describe_machine(), "rows": rows, "load_average": os.getloadavg()[0]}
        for case in ("identical", "100 differences"):
            if case != "identical":
                planted = plant(cluster.dsn("cloud"), rows)
                log(f"planted {len(planted)} differences")
            log(f"{case}: strangler reconcile")
            ours = median_of(repeat, lambda: time_strangler(cluster, tmp))
            log(f"{case}: reladiff")
            theirs = median_of(repeat, lambda: time_reladiff(cluster, reladiff_threads))
            results[case] = {"strangler": ours, "reladiff": theirs, "cli_seconds": round(time_cli(cluster, tmp), 3)}
    print(f"{'case':<18} {'strangler reconcile':>20} {'reladiff':>10} {'ratio':>7}  found (ours / reladiff)  CLI")
    for case in ("identical", "100 differences"):
        row = results[case]
        ours, theirs = row["strangler"], row["reladiff"]
        ratio = theirs["seconds"] / ours["seconds"]
        print(f"{case:<18} {ours['seconds']:>19.2f}s {theirs['seconds']:>9.2f}s {ratio:>6.2f}x"
              f"  {ours['found']:>5} / {theirs['found']:<5}           {row['cli_seconds']:.2f}s")  # fmt: skip
    if json_path:
        json_path.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
