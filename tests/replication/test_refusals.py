"""Bad input is refused with one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.replicate import replicate
from core.pgcluster import PgCluster, find_pg_bin, free_port, start_cluster
from core.procs import wait_until
from tests.replication.support import ACTIVE, Pair


def run(pair: Pair, *extra: str, source_url: str | None = None) -> Result:
    argv = ["run", "--source-url", source_url or pair.source_url, "--target-url", pair.target_url,
            "--slot", pair.slot, "--progress", "plain", "--slot-wait", "1", *extra]  # fmt: skip
    return CliRunner().invoke(replicate, argv)


def refused(result: Result, *fragments: str) -> str:
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), result.exception
    for fragment in fragments:
        assert fragment in result.output, result.output
    return result.output


@pytest.fixture
def replica_only_cluster() -> Iterator[PgCluster]:
    """A cluster whose wal_level is replica, as many production servers are until someone changes it."""
    cluster = start_cluster()
    try:
        subprocess.run([str(cluster.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres",
                        "-qc", "ALTER SYSTEM SET wal_level = replica"], check=True, capture_output=True)  # fmt: skip
        cluster.restart()
        yield cluster
    finally:
        cluster.stop()


def test_missing_wal_level_logical(replica_only_cluster: PgCluster, make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(customers=5)
    source = replica_only_cluster.create_database("legacy")
    output = refused(run(pair, source_url=source), "wal_level=replica", "wal_level=logical")
    assert output.count("\n") <= 2


def test_missing_privileges(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(customers=5)
    role = f"weak_{pair.source.dbname}"
    pair.sql("source", f"CREATE ROLE {role} LOGIN")
    try:
        url = pair.source_url.replace("postgres@", f"{role}@")
        refused(run(pair, source_url=url), f"role {role} may not stream changes", "REPLICATION")
        pair.sql("source", f"ALTER ROLE {role} REPLICATION")
        refused(run(pair, source_url=url), f"role {role} may not read tables", "cbs.custmast")
    finally:
        pair.sql("source", f"DROP OWNED BY {role}; DROP ROLE {role}")


def test_a_table_without_a_key(make_pair: Callable[..., Pair], tmp_path: Path) -> None:
    pair = make_pair(customers=5)
    pair.sql("source", "CREATE TABLE cbs.audit (at text, what text); CREATE TABLE cbs.notes (n text)")
    config = tmp_path / "mapping.yaml"
    config.write_text("tables:\n  cbs.audit: {target: cloud.audit}\n  cbs.notes: {target: cloud.notes}\n"
                      "  cbs.custmast: {target: cloud.customers_copy}\n")  # fmt: skip
    refused(run(pair, "--config", str(config)), "tables without a primary key: cbs.audit, cbs.notes",
            "REPLICA IDENTITY FULL")  # fmt: skip


def test_a_slot_already_in_use(make_pair: Callable[..., Pair], tmp_path: Path) -> None:
    pair = make_pair(customers=5)
    pair.sql("source", "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (pair.slot,))
    info = pair.source
    holder = subprocess.Popen(
        [str(find_pg_bin() / "pg_recvlogical"), "-h", str(info.host), "-p", str(info.port), "-U", "postgres",
         "-d", info.dbname, "-S", pair.slot, "--start", "-f", "/dev/null", "-P", "pgoutput",
         "-o", "proto_version=1", "-o", "publication_names=p_test"],
        stderr=(tmp_path / "recvlogical.log").open("wb"),
    )  # fmt: skip
    try:
        pair.sql("source", "CREATE PUBLICATION p_test FOR TABLE cbs.custmast")
        wait_until(lambda: bool(pair.sql("source", ACTIVE, (pair.slot,))), 10, what="pg_recvlogical to hold the slot")
        refused(run(pair, "--publication", "p_test"), f"slot {pair.slot} is in use by PID", "pg_recvlogical")
    finally:
        holder.terminate()
        holder.wait(10)


def test_a_bad_mapping_file_names_file_and_line(make_pair: Callable[..., Pair], tmp_path: Path) -> None:
    pair = make_pair(customers=5)
    config = tmp_path / "mapping.yaml"
    config.write_text("tables:\n  cbs.custmast:\n    target: cloud.customers\n    columns:\n"
                      "      custno: {to: id, transform: to_int}\n")  # fmt: skip
    refused(run(pair, "--config", str(config)), f"{config}:5:", "unknown transform 'to_int'")


def test_missing_or_unreachable_databases(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair()
    refused(CliRunner().invoke(replicate, ["run", "--target-url", pair.target_url], env={}), "no source database")
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    refused(run(pair, source_url=closed), "cannot connect to postgres@127.0.0.1")
    refused(run(pair, source_url="mysql://x@y/z"), "not a PostgreSQL database URL")
