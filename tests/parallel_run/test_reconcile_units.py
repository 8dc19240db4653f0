"""The pure parts of reconcile: range cutting and narrowing, row classification, masking, SQL forms, the lag wait."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from parallel_run.reconcile.bisect import (
    Sums,
    bucket_range,
    differing,
    even_buckets,
    int_bounds,
    narrow,
    next_bounds,
    quantile_bounds,
)
from parallel_run.reconcile.compare import Row, compare_rows, same_version
from parallel_run.reconcile.lag import LagError, wait_applied
from parallel_run.reconcile.output import mask_key, mask_value
from parallel_run.reconcile.spec import sql_form
from replication.transforms import BUILTIN


def test_int_bounds_cut_evenly_and_never_repeat() -> None:
    assert int_bounds(0, 100, 4) == [0, 25, 50, 75, 100]
    assert int_bounds(5, 8, 32) == [5, 6, 7, 8]  # no more parts than keys
    assert int_bounds(7, 8, 10) == [7, 8]


def test_quantile_bounds_spread_over_a_sample() -> None:
    keys = [bytes([i]) for i in range(100)]
    bounds = quantile_bounds(keys, 4)
    assert bounds == [b"\x00", b"\x19", b"\x32", b"\x4b", b"\x63"]
    assert quantile_bounds([], 4) == []
    assert quantile_bounds([b"a", b"a", b"a"], 8) == [b"a"]


def test_bucket_ranges_are_half_open_with_open_edges() -> None:
    bounds = [10, 20, 30]
    assert (bucket_range(bounds, 0).low, bucket_range(bounds, 0).high) == (None, 10)
    assert (bucket_range(bounds, 2).low, bucket_range(bounds, 2).high) == (20, 30)
    assert (bucket_range(bounds, 3).low, bucket_range(bounds, 3).high) == (30, None)


def test_differing_buckets_compare_count_and_hash_and_treat_absent_as_empty() -> None:
    legacy = {1: Sums(10, 123, 1, 9), 2: Sums(5, 7, 10, 14), 3: Sums(1, 1, 20, 20)}
    cloud = {1: Sums(10, 123, 1, 9), 2: Sums(5, 8, 10, 14), 4: Sums(1, 2, 30, 30)}
    assert differing(legacy, cloud) == [2, 3, 4]
    assert differing({1: Sums(0, 0)}, {}) == []


def test_narrow_fetches_small_ranges_and_splits_large_ones() -> None:
    bounds = [0, 1000, 2000]
    legacy = {1: Sums(1000, 1, 0, 999), 2: Sums(40, 1, 1000, 1039), 3: Sums(1, 5, 5000, 5000)}
    cloud = {1: Sums(1000, 2, 0, 999), 2: Sums(40, 2, 1000, 1039)}
    plan = narrow(bounds, legacy, cloud, "int", fetch_rows=64, fanout=4)
    assert plan.fetch == [2, 3]  # 40 rows: fetch; one key beyond the last bound: fetch
    assert plan.split == {1: [0, 250, 500, 750, 1000]}
    assert plan.rows == 1000 + 40 + 1
    assert next_bounds({1: [0, 500, 1000], 7: [3000, 3500]}) == (0, 500, 1000, 3000, 3500)


def test_narrow_splits_text_keys_at_sampled_quantiles_or_fetches_without_a_sample() -> None:
    legacy = {1: Sums(500, 1, b"a", b"z"), 2: Sums(500, 1, b"a", b"z")}
    cloud = {1: Sums(500, 2, b"a", b"z"), 2: Sums(500, 2, b"a", b"z")}
    samples = {1: [b"a", b"f", b"m", b"t", b"z"]}
    plan = narrow([b"a"], legacy, cloud, "bytes", fetch_rows=64, fanout=4, samples=samples)
    assert plan.split == {1: [b"a", b"f", b"m", b"t", b"z"]}
    assert plan.fetch == [2]


def test_compare_rows_classifies_and_names_the_differing_columns() -> None:
    names = ("id", "email", "balance")
    legacy = {"1": Row(("1", "a@x.io", "1.00"), "100"), "2": Row(("2", "b@x.io", "2.00")), "3": Row(("3", "", None))}
    cloud = {"1": Row(("1", "a@x.io", "1.00")), "2": Row(("2", "b@x.io", "2.50")), "3": Row(("3", None, None)),
             "4": Row(("4", "d@x.io", "0.00"))}  # fmt: skip
    diffs = compare_rows("cloud.t", names, legacy, cloud)
    assert [(d.key, d.kind) for d in diffs] == [("4", "extra"), ("2", "different"), ("3", "different")]
    assert [(c.column, c.legacy, c.cloud) for c in diffs[1].columns] == [("balance", "2.00", "2.50")]
    assert [(c.column, c.legacy, c.cloud) for c in diffs[2].columns] == [("email", "", None)]  # '' is not NULL
    del cloud["1"]
    assert compare_rows("cloud.t", names, legacy, cloud)[0].kind == "missing"


def test_same_version_needs_the_same_row_version_or_absence_both_times() -> None:
    assert same_version(None, None)
    assert not same_version(Row(("1",), "100"), None)
    assert same_version(Row(("1",), "100"), Row(("1",), "100"))
    assert not same_version(Row(("1",), "100"), Row(("1",), "101"))  # updated to the same values meanwhile


@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        ("email", "jane.doe@example.com", "j***@e***.com"),
        ("phone", "+44 7700 900489", "+44******89"),
        ("name", "Jane Doe", "J*** D***"),
        ("address_line1", "12 High Street", "1*** H*** S***"),
        ("description", "to GB82 WEST 1234 5698 7654 32", "to GB82********5432"),
        ("balance", "12.30", "12.30"),
        ("updated_at", "2024-01-01 00:00:00+00", "2024-01-01 00:00:00+00"),
        ("email", None, None),
    ],
)
def test_values_are_masked_before_they_are_shown(column: str, value: str | None, shown: str | None) -> None:
    assert mask_value(column, value) == shown


def test_keys_stay_readable_unless_they_are_personal() -> None:
    assert mask_key("4111111111111111") == "4111111111111111"  # an id that happens to pass Luhn
    assert mask_key("P000000042") == "P000000042"
    assert mask_key("jane@example.com") == "j***@e***.com"


def test_sql_form_of_a_transform_or_none_without_one() -> None:
    assert sql_form(None, '"c"') == '"c"'
    assert sql_form(BUILTIN["cents_to_decimal"], '"c"') == '("c"::numeric / 100)::numeric(20,2)'

    def no_sql(column: str) -> str:
        raise NotImplementedError

    import dataclasses

    assert sql_form(dataclasses.replace(BUILTIN["rtrim"], sql=no_sql), '"c"') is None


class FakeCheckpoints:
    """A cloud connection whose checkpoint for slot `s` is read from a list, one value per poll."""

    def __init__(self, lsns: list[int | None]) -> None:
        self.lsns = lsns

    def execute(self, sql: str, params: Any = None) -> FakeCheckpoints:
        self.last = sql
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        if "to_regclass" in self.last:
            return ("strangler_cdc.checkpoints",)
        lsn = self.lsns.pop(0) if len(self.lsns) > 1 else self.lsns[0]
        return None if lsn is None else (f"0/{lsn:X}",)


def test_wait_applied_returns_once_the_checkpoint_passes_the_goal() -> None:
    conn = FakeCheckpoints([0x10, 0x20, 0x30])
    clock = iter(range(100))
    assert wait_applied(conn, "s", 0x25, 10, clock=lambda: next(clock), sleep=lambda s: None) == 0x30  # type: ignore[arg-type]


def test_wait_applied_says_the_replicator_is_behind_or_never_ran() -> None:
    clock = iter(range(100))
    with pytest.raises(LagError, match="behind or not running: slot s has applied 0/10, 21 bytes short"):
        wait_applied(FakeCheckpoints([0x10]), "s", 0x25, 3, clock=lambda: next(clock), sleep=lambda s: None)  # type: ignore[arg-type]
    clock = iter(range(100))
    with pytest.raises(LagError, match="no checkpoint for slot s"):
        wait_applied(FakeCheckpoints([None]), "s", 0x25, 3, clock=lambda: next(clock), sleep=lambda s: None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("low", "high", "parts"), [(0, 100, 4), (-50, 1_000_003, 7), (5, 8, 32), (1, 10**12, 2000)])
def test_even_buckets_number_keys_as_width_bucket_does(
    new_database: Callable[[str], str], low: int, high: int, parts: int
) -> None:
    bounds = int_bounds(low, high, parts)
    sql = even_buckets(bounds, "k")
    assert sql is not None
    keys = sorted({low - 1, low, high - 1, high, high + 1, *bounds, *(b - 1 for b in bounds), *(b + 1 for b in bounds)})
    url = new_database("buckets").replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"SELECT k, {sql}, width_bucket(k, %s::bigint[]) FROM unnest(%s::bigint[]) AS k", (bounds, keys)
        ).fetchall()
    assert [(k, mine) for k, mine, _ in rows] == [(k, theirs) for k, _, theirs in rows]


def test_even_buckets_declines_bounds_it_cannot_compute() -> None:
    assert even_buckets([1]) is None
    assert even_buckets([0, 10, 11, 30]) is None  # not evenly cut
    assert even_buckets(["a", "b"]) is None
