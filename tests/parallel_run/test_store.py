"""The comparison store against real PostgreSQL: round trips, batched writes, concurrent upserts, the guard's window."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from core import db
from core.migrate import create_schema
from parallel_run.model import Comparison, Difference, WindowStats
from parallel_run.store import ComparisonStore

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def engine(new_database: Callable[[str], str]) -> Iterator[sa.Engine]:
    engine = db.make_engine(new_database("cmpstore"), pool_size=8)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: sa.Engine) -> ComparisonStore:
    return ComparisonStore(engine)


def comparison(
    request_id: str,
    *diffs: Difference,
    capability: str = "accounts.balance",
    at: datetime = T0,
    verdict: str | None = None,
    primary_status: int = 200,
    shadow_status: int | None = 200,
) -> Comparison:
    return Comparison(
        at=at, capability=capability, request_id=request_id, primary_side="legacy", shadow_side="cloud",
        primary_status=primary_status, shadow_status=shadow_status, primary_ms=12.5,
        shadow_ms=None if shadow_status is None else 20.0,
        verdict=verdict or ("mismatch" if diffs else "match"), differences=diffs,
    )  # fmt: skip


def rows(engine: sa.Engine, table: sa.Table, *order: str) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(table).order_by(*order))]


def test_record_round_trips_comparisons_and_their_differences(store: ComparisonStore, engine: sa.Engine) -> None:
    amount = Difference("$.amount", "value", '"10.00"', '"10.01"', critical=True)
    email = Difference("$.email", "value", '"j***@e***.com"', '"k***@e***.com"')
    store.record([comparison("r1", amount, email), comparison("r2"), comparison("r3", shadow_status=None,
                  verdict="shadow_timeout")])  # fmt: skip

    stored = rows(engine, db.comparisons, "request_id")
    assert [(r["request_id"], r["verdict"], r["critical"]) for r in stored] == [
        ("r1", "mismatch", True),
        ("r2", "match", False),
        ("r3", "shadow_timeout", False),
    ]
    assert stored[0]["at"] == T0 and stored[0]["primary_ms"] == 12.5 and stored[2]["shadow_status"] is None
    diffs = rows(engine, db.comparison_diffs, "path")
    assert {d["comparison_id"] for d in diffs} == {stored[0]["id"]}
    assert [(d["path"], d["kind"], d["primary_value"], d["shadow_value"], d["critical"]) for d in diffs] == [
        ("$.amount", "value", '"10.00"', '"10.01"', True),
        ("$.email", "value", '"j***@e***.com"', '"k***@e***.com"', False),
    ]


def test_differences_attach_to_their_own_comparison_in_a_large_batch(store: ComparisonStore, engine: sa.Engine) -> None:
    batch = [comparison(f"r{i:04d}", Difference(f"$.f{i}", "value", str(i), str(i + 1))) for i in range(1200)]
    started = time.perf_counter()
    store.record(batch)
    elapsed = time.perf_counter() - started
    with engine.connect() as conn:
        pairs = conn.execute(
            sa.select(db.comparisons.c.request_id, db.comparison_diffs.c.path).join(
                db.comparison_diffs, db.comparison_diffs.c.comparison_id == db.comparisons.c.id
            )
        ).all()
    assert len(pairs) == 1200
    assert all(path == f"$.f{int(rid[1:])}" for rid, path in pairs)
    # Off the request path but still bounded: a batched write of 1,200 rows + diffs is well under a second here.
    assert elapsed < 2.0, elapsed


def test_one_row_per_path_keeps_the_critical_mark(store: ComparisonStore, engine: sa.Engine) -> None:
    store.record([comparison(
        "r1",
        Difference("$.items[*].amount", "value", "1", "2"),
        Difference("$.items[*].amount", "value", "3", "4", critical=True),
    )])  # fmt: skip
    diffs = rows(engine, db.comparison_diffs, "path")
    assert [(d["primary_value"], d["critical"]) for d in diffs] == [("1", True)]


def test_a_failed_batch_stores_nothing(store: ComparisonStore, engine: sa.Engine) -> None:
    bad = comparison("r2", verdict="match")
    bad = Comparison(**{**bad.__dict__, "capability": None})
    with pytest.raises(sa.exc.IntegrityError):
        store.record([comparison("r1", Difference("$.a", "value", "1", "2")), bad])
    assert rows(engine, db.comparisons, "id") == [] and rows(engine, db.comparison_diffs, "path") == []


def test_empty_batch_is_a_no_op(store: ComparisonStore, engine: sa.Engine) -> None:
    store.record([])
    assert rows(engine, db.comparisons, "id") == []


def test_noise_upsert_counts_sightings_and_keeps_first_and_last_seen(store: ComparisonStore) -> None:
    store.add_noise("accounts.balance", ["$.as_of", "$.trace_id"], T0)
    store.add_noise("accounts.balance", ["$.as_of", "$.as_of"], T0 + timedelta(minutes=5))
    store.add_noise("accounts.balance", ["$.as_of"], T0 - timedelta(minutes=1))  # a late writer's older sighting
    store.add_noise("payments.get", ["$.fetched_at"], T0)
    store.add_noise("payments.get", [], T0)

    assert store.noise_paths("accounts.balance") == frozenset({"$.as_of", "$.trace_id"})
    assert store.noise_paths("payments.get") == frozenset({"$.fetched_at"})
    assert store.noise_paths("nobody") == frozenset()
    noise = {(r["capability"], r["path"]): r for r in rows(store._engine, db.comparison_noise, "path")}
    as_of = noise[("accounts.balance", "$.as_of")]
    assert (as_of["seen"], as_of["first_seen"], as_of["last_seen"]) == (
        3,
        T0 - timedelta(minutes=1),
        T0 + timedelta(minutes=5),
    )
    assert noise[("accounts.balance", "$.trace_id")]["seen"] == 1


def run_concurrently(workers: int, job: Callable[[int], None]) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(workers)

    def run(i: int) -> None:
        try:
            barrier.wait()
            job(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []


def test_concurrent_noise_upserts_lose_no_sighting(store: ComparisonStore) -> None:
    paths = [f"$.p{i}" for i in range(20)]

    def job(i: int) -> None:
        for n in range(10):
            # Overlapping sets in different orders: the store sorts, so writers lock rows in one order.
            chosen = paths[i % 3 :: 2] if n % 2 else list(reversed(paths))
            store.add_noise("accounts.balance", chosen, T0 + timedelta(seconds=i))

    run_concurrently(8, job)
    expected: dict[str, int] = dict.fromkeys(paths, 0)
    for i in range(8):
        for n in range(10):
            for p in set(paths[i % 3 :: 2] if n % 2 else paths):
                expected[p] += 1
    seen = {r["path"]: r["seen"] for r in rows(store._engine, db.comparison_noise, "path")}
    assert seen == expected


def test_skips_add_up_per_minute_bucket_even_concurrently(store: ComparisonStore) -> None:
    def job(i: int) -> None:
        for n in range(25):
            store.add_skips("accounts.balance", "queue_full", 2, T0 + timedelta(seconds=(i * 25 + n) % 59))

    run_concurrently(6, job)
    store.add_skips("accounts.balance", "queue_full", 5, T0 + timedelta(minutes=1, seconds=30))
    store.add_skips("accounts.balance", "not_sampled", 7, T0)
    store.add_skips("accounts.balance", "not_sampled", 0, T0)
    got = [(r["minute"], r["reason"], r["count"]) for r in rows(store._engine, db.shadow_skips, "minute", "reason")]
    assert got == [
        (T0, "not_sampled", 7),
        (T0, "queue_full", 6 * 25 * 2),
        (T0 + timedelta(minutes=1), "queue_full", 5),
    ]


def test_naive_datetimes_are_taken_as_utc(store: ComparisonStore) -> None:
    store.add_skips("c", "queue_full", 1, datetime(2024, 5, 1, 12, 0, 42))
    assert rows(store._engine, db.shadow_skips, "minute")[0]["minute"] == T0


def test_window_counts_what_the_guard_needs(store: ComparisonStore) -> None:
    cap = "accounts.balance"
    noisy = Difference("$.as_of", "value", '"a"', '"b"')
    noisy_child = Difference("$.trace[*].id", "value", "1", "2")
    real = Difference("$.currency", "value", '"EUR"', '"GBP"')
    critical_on_noise = Difference("$.as_of", "value", '"a"', '"b"', critical=True)
    store.add_noise(cap, ["$.as_of", "$.trace"], T0)
    store.record([
        comparison("old", real, at=T0 - timedelta(minutes=10)),  # before the window
        comparison("m1"),
        comparison("n1", noisy, noisy_child),  # stored as a mismatch before the noise was learnt: not counted now
        comparison("x1", noisy, real),
        comparison("c1", critical_on_noise),  # noise never hides a critical path
        comparison("s1", Difference("status", "status", "200", "500", critical=True), shadow_status=500),
        comparison("e1", shadow_status=None, verdict="shadow_error"),
        comparison("t1", shadow_status=None, verdict="shadow_timeout"),
        comparison("p5", primary_status=503, shadow_status=503),
        comparison("other", real, capability="payments.get"),
        comparison("bare", verdict="mismatch"),  # a mismatch without stored differences still counts
    ])  # fmt: skip
    stats = store.window(cap, T0 - timedelta(minutes=1))
    assert stats == WindowStats(
        comparisons=9, mismatches=4, critical_mismatches=2, shadow_errors=1, shadow_timeouts=1, primary_5xx=1
    )
    assert store.window(cap, T0 + timedelta(seconds=1)) == WindowStats()
    assert store.window(cap, T0 - timedelta(hours=1)).comparisons == 10


def test_evidence_past_its_retention_goes_with_its_differences_and_the_rest_stays(
    store: ComparisonStore, engine: sa.Engine
) -> None:
    now = datetime.now(UTC)
    real = Difference("$.currency", "value", '"EUR"', '"GBP"')
    old = [comparison(f"old-{i}", *([real] if i % 2 == 0 else []), at=now - timedelta(days=40 - i)) for i in range(5)]
    young = [comparison(f"young-{i}", real, at=now - timedelta(days=29 - i)) for i in range(2)]
    store.record(old)
    store.record(young)
    for at in (now - timedelta(days=31), now - timedelta(days=1)):
        store.add_skips("accounts.balance", "queue_full", 3, at)
    keep_s = 30 * 86400

    # Two batches of two at most: four of the five old comparisons go, oldest first.
    assert store.purge_older_than(keep_s, limit=2, batches=2) == 4
    assert [r["request_id"] for r in rows(engine, db.comparisons, "id")] == ["old-4", "young-0", "young-1"]
    # The next call finds one old comparison at the head and stops at the first young one.
    assert store.purge_older_than(keep_s, limit=2, batches=2) == 1
    assert store.purge_older_than(keep_s, limit=2, batches=2) == 0
    kept = rows(engine, db.comparisons, "id")
    assert [r["request_id"] for r in kept] == ["young-0", "young-1"]
    assert sorted(r["comparison_id"] for r in rows(engine, db.comparison_diffs, "comparison_id")) == [
        r["id"] for r in kept
    ]  # every old comparison's differences went with it
    assert [r["count"] for r in rows(engine, db.shadow_skips, "minute")] == [3]  # the day-old bucket
