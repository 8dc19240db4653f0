"""Replication between two real databases: snapshot with concurrent writes, every kind of change, types, drift."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

from core.procs import wait_until
from replication.config import parse_mapping
from replication.plan import IncompatibleChange
from replication.snapshot import SnapshotProgress
from tests.replication.support import Pair, ThreadedReplicator, assert_target_equals_source

PAYMENT = """
WITH p AS (INSERT INTO cbs.payments VALUES (%(id)s, %(id)s, %(dr)s, %(cr)s, %(amt)s, 'EUR', 'PSTD', '00',
                                            '20240101', '120000', 'cdc test') RETURNING payid)
INSERT INTO cbs.ledger (payid, acctno, amtcents, postdt)
SELECT payid, a, m, '20240101' FROM p, (VALUES (%(dr)s, -%(amt)s::bigint), (%(cr)s, %(amt)s::bigint)) AS l(a, m)
"""
MOVE = (
    "UPDATE cbs.acctmast SET curbal = curbal + CASE acctno WHEN %(dr)s THEN -%(amt)s ELSE %(amt)s END "
    "WHERE acctno IN (%(dr)s, %(cr)s)"
)


def pay(pair: Pair, conn: object, n: int, customers: int) -> None:
    """One legacy payment: a payments row, two ledger rows and two balance updates, in one transaction."""
    params = {"id": f"P{n:09d}", "dr": f"{n % customers + 1:010d}", "cr": f"{(n * 7 + 3) % customers + 1:010d}",
              "amt": 1 + n % 500}  # fmt: skip
    if params["dr"] == params["cr"]:
        params["cr"] = f"{(n + 1) % customers + 1:010d}"
    with conn.transaction():  # type: ignore[attr-defined]
        conn.execute(PAYMENT, params)  # type: ignore[attr-defined]
        conn.execute(MOVE, params)  # type: ignore[attr-defined]


def test_snapshot_with_concurrent_writes_then_stream_equals_the_source(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(customers=3000)
    written = [0]
    stop = threading.Event()

    def writer() -> None:
        with pair.connect("source") as conn:
            while not stop.is_set():
                pay(pair, conn, written[0], 3000)
                written[0] += 1

    thread = threading.Thread(target=writer)
    thread.start()
    during: list[int] = []

    def advanced(table: str, pages: int, rows: int) -> None:
        # Hold the snapshot until more payments have committed: they must reach the target by the stream alone.
        goal = written[0] + 5
        wait_until(lambda: written[0] >= goal, 10, 0.01, "payments during the snapshot")
        during.append(written[0])

    replicator = ThreadedReplicator(pair.options(), snapshot_progress=SnapshotProgress(advanced=advanced))
    try:
        replicator.wait_for(lambda: pair.applied_lsn() > 0 and len(during) == 4, "the snapshot")
        wait_until(lambda: written[0] >= during[-1] + 20, 10, what="payments after the snapshot")
    finally:
        stop.set()
        thread.join()
    pair.wait_caught_up(alive=replicator.alive)
    replicator.stop()
    counts = assert_target_equals_source(pair)
    assert counts["cloud.accounts"] == 3000 and counts["cloud.legacy_payments"] == written[0]
    assert counts["cloud.legacy_ledger_entries"] == 2 * written[0]
    assert replicator.replicator.stats.applied_txs > 0


ITEMS = parse_mapping("""\
tables:
  app.items:
    target: cloud_app.items
    columns:
      name: label
  app.nokey:
    target: cloud_app.nokey
""")


def items_pair(make_pair: Callable[..., Pair]) -> Pair:
    pair = make_pair(mapping=ITEMS)
    pair.sql("source", """
        CREATE SCHEMA app;
        CREATE TABLE app.items (id int PRIMARY KEY, name text NOT NULL, big text, doc jsonb);
        ALTER TABLE app.items ALTER COLUMN big SET STORAGE EXTERNAL;
        CREATE TABLE app.nokey (a int, b text);
        ALTER TABLE app.nokey REPLICA IDENTITY FULL;
        INSERT INTO app.items SELECT g, 'item ' || g, NULL, NULL FROM generate_series(1, 50) g;
    """)  # fmt: skip
    return pair


def test_inserts_updates_key_changes_toast_deletes_and_truncate(make_pair: Callable[..., Pair]) -> None:
    pair = items_pair(make_pair)
    replicator = ThreadedReplicator(pair.options())
    try:
        replicator.wait_for(lambda: pair.applied_lsn() > 0, "the snapshot")
        big = "".join(f"{i:05d}" for i in range(2000))  # 10 kB, stored out of line
        with pair.connect("source") as conn:
            conn.execute("INSERT INTO app.items VALUES (100, 'toasted', %s, '{\"v\": 1}')", (big,))
            conn.execute("UPDATE app.items SET name = 'still toasted' WHERE id = 100")  # big is sent as unchanged
            conn.execute("UPDATE app.items SET id = 101 WHERE id = 100")  # a key change
            conn.execute("UPDATE app.items SET doc = '[1, \"two\"]' WHERE id BETWEEN 1 AND 10")
            conn.execute("DELETE FROM app.items WHERE id BETWEEN 11 AND 20")
            with conn.transaction():
                conn.execute("INSERT INTO app.nokey VALUES (1, 'a'), (1, 'a'), (2, 'b')")
                conn.execute("UPDATE app.nokey SET b = 'c' WHERE a = 2")
            conn.execute("DELETE FROM app.nokey WHERE ctid = (SELECT min(ctid) FROM app.nokey WHERE a = 1)")
        pair.wait_caught_up(alive=replicator.alive)
        assert assert_target_equals_source(pair) == {"cloud_app.items": 41, "cloud_app.nokey": 2}
        assert pair.sql("target", "SELECT label, length(big) FROM cloud_app.items WHERE id = 101") == [
            ("still toasted", len(big))
        ]
        pair.sql("source", "TRUNCATE app.items")
        pair.sql("source", "INSERT INTO app.items VALUES (1, 'after truncate', NULL, NULL)")
        pair.wait_caught_up(alive=replicator.alive)
        assert pair.sql("target", "SELECT id, label FROM cloud_app.items") == [(1, "after truncate")]
    finally:
        replicator.stop()


TYPES = parse_mapping("tables:\n  app.typed:\n    target: cloud_app.typed\n")


def test_every_listed_type_round_trips(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(mapping=TYPES)
    ddl = """CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');"""
    pair.sql("target", ddl)
    pair.sql("source", ddl + """
        CREATE SCHEMA app;
        CREATE TABLE app.typed (id int PRIMARY KEY, n numeric(12, 4), ts timestamptz, d date, j json, jb jsonb,
                                b bytea, ia int[], ta text[], m mood, ma mood[], f float8, flag boolean, u uuid);
    """)  # fmt: skip
    replicator = ThreadedReplicator(pair.options())
    rows = [
        (1, Decimal("-12.3456"), datetime(2024, 1, 15, 8, 0, 0, 500000, tzinfo=UTC), date(2024, 2, 29),
         '{"a": [1, 2.5, null]}', '{"b": {"c": "ü"}}', b"\x00\xffbinary", [1, None, 3], ["a b", 'c"d', None, ""],
         "happy", ["sad", "ok"], 1.5e300, True, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        (2,) + (None,) * 13,
    ]  # fmt: skip
    try:
        replicator.wait_for(lambda: pair.applied_lsn() > 0, "the snapshot")
        with pair.connect("source") as conn:
            for row in rows:
                conn.execute(
                    "INSERT INTO app.typed VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::mood[], %s, %s, %s)", row
                )
            conn.execute("UPDATE app.typed SET n = n * 2, ta = ta || ARRAY['more'] WHERE id = 1")
        pair.wait_caught_up(alive=replicator.alive)
        query = "SELECT * FROM app.typed ORDER BY id"
        assert pair.sql("target", query.replace("app.", "cloud_app.")) == pair.sql("source", query)
        typed = pair.sql("target", "SELECT n, j::text, ma FROM cloud_app.typed WHERE id = 1")[0]
        assert typed == (Decimal("-24.6912"), '{"a": [1, 2.5, null]}', "{sad,ok}")  # psycopg reads enum arrays as text
    finally:
        replicator.stop()


def test_a_column_added_on_the_source_is_added_to_the_target_and_replication_goes_on(
    make_pair: Callable[..., Pair],
) -> None:
    pair = make_pair(customers=100)
    replicator = ThreadedReplicator(pair.options())
    try:
        replicator.wait_for(lambda: pair.applied_lsn() > 0, "the snapshot")
        with pair.connect("source") as conn:
            pay(pair, conn, 1, 100)
            conn.execute("ALTER TABLE cbs.custmast ADD COLUMN segment text NOT NULL DEFAULT 'retail'")
            conn.execute("UPDATE cbs.custmast SET segment = 'private', email = 'x@y.z' WHERE custno = '0000000007'")
            conn.execute("ALTER TABLE cbs.acctmast ADD COLUMN overdraft_cents bigint")
            pay(pair, conn, 2, 100)
        pair.wait_caught_up(alive=replicator.alive)
        segments = pair.sql("target", "SELECT segment, count(*) FROM cloud.customers GROUP BY 1 ORDER BY 1")
        assert segments == [("private", 1), ("retail", 99)]
        assert_target_equals_source(pair)
        assert replicator.error is None
    finally:
        replicator.stop()


def test_an_incompatible_change_stops_the_replicator_naming_table_and_column(
    make_pair: Callable[..., Pair],
) -> None:
    pair = make_pair(customers=20)
    replicator = ThreadedReplicator(pair.options())
    replicator.wait_for(lambda: pair.applied_lsn() > 0, "the snapshot")
    before = pair.sql("target", "SELECT count(*) FROM cloud.legacy_payments")
    with pair.connect("source") as conn:
        conn.execute("ALTER TABLE cbs.acctmast ALTER COLUMN ccy TYPE integer USING 978")
        pay(pair, conn, 1, 20)
    error = replicator.wait_failed()
    assert isinstance(error, IncompatibleChange)
    assert (error.table, error.column) == ("cbs.acctmast", "ccy")
    assert "integer" in str(error) and "cloud.accounts.currency" in str(error)
    # Nothing of the transaction that carried the change was applied.
    assert pair.sql("target", "SELECT count(*) FROM cloud.legacy_payments") == before


def test_heartbeats_advance_an_idle_slot_past_unrelated_writes(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(customers=10)
    replicator = ThreadedReplicator(pair.options(heartbeat_s=0.2, status_s=0.1))
    try:
        replicator.wait_for(lambda: pair.applied_lsn() > 0, "the snapshot")
        pair.sql(
            "source",
            "CREATE TABLE not_replicated AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) g",
        )
        after = pair.sql("source", "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0]
        confirmed = "SELECT confirmed_flush_lsn - '0/0'::pg_lsn FROM pg_replication_slots WHERE slot_name = %s"
        wait_until(
            lambda: pair.sql("source", confirmed, (pair.slot,))[0][0] >= after, 15, what="the idle slot to advance"
        )
        assert replicator.replicator.stats.heartbeats >= 1
    finally:
        replicator.stop()
