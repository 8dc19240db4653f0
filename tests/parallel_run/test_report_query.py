"""Every figure of a capability's report, read from a real control-plane database filled with a known run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa

from core.db import make_engine
from core.migrate import create_schema
from parallel_run.report.model import CapabilityReport, PathExample
from parallel_run.report.query import build_reports
from tests.parallel_run import report_world as w


@pytest.fixture
def engine(new_database: Callable[[str], str]) -> sa.Engine:
    engine = make_engine(new_database("report"), pool_size=1)
    create_schema(engine)
    w.seed(engine)
    return engine


@pytest.fixture
def report(engine: sa.Engine) -> CapabilityReport:
    (report,) = build_reports(engine, [(w.CAP, w.SINCE, w.UNTIL)])
    return report


def test_counts_split_matches_mismatches_and_shadow_failures(report: CapabilityReport) -> None:
    assert (report.capability, report.since, report.until) == (w.CAP, w.SINCE, w.UNTIL)
    assert report.comparisons == 38
    # 20 plain matches, 5 differing only on noise, and the pair of 503s.
    assert report.matches == 26
    # 4 on $.fee, 2 on $.amount, $.status (critical though noisy), the 500, and iban/memo.
    assert report.mismatches == 9
    assert (report.shadow_errors, report.shadow_timeouts) == (1, 2)
    assert report.compared == 35
    assert report.match_rate == pytest.approx(26 / 35)
    assert report.critical_mismatches == 3
    assert report.critical_paths == ("$.amount", "$.status")


def test_window_edges_and_sides(report: CapabilityReport) -> None:
    assert report.first_at == w.AT["m-0"]
    assert report.last_at == w.AT["error-1"]
    assert report.observed_s == timedelta(hours=18, minutes=30).total_seconds()
    assert (report.primary_side, report.shadow_side) == ("legacy", "cloud")


def test_error_rates_per_side(report: CapabilityReport) -> None:
    assert report.primary_errors == 1  # the 503 pair
    assert report.shadow_failed == 5  # the 503, the 500, two timeouts and one error
    assert report.primary_error_rate == pytest.approx(1 / 38)
    assert report.shadow_error_rate == pytest.approx(5 / 38)


def test_latency_percentiles_are_postgres_percentile_cont_per_side(report: CapabilityReport) -> None:
    shadow = [ms for ms in w.SHADOW_MS if ms is not None]
    assert len(shadow) == 36  # timeouts have no shadow time
    assert report.latency.primary_p50 == pytest.approx(w.percentile_cont(w.PRIMARY_MS, 0.5))
    assert report.latency.primary_p99 == pytest.approx(w.percentile_cont(w.PRIMARY_MS, 0.99))
    assert report.latency.shadow_p50 == pytest.approx(w.percentile_cont(shadow, 0.5))
    assert report.latency.shadow_p99 == pytest.approx(w.percentile_cont(shadow, 0.99))
    assert report.latency.primary_p50 == pytest.approx(28.5)


def test_skipped_shadows_by_reason_inside_the_window_only(report: CapabilityReport) -> None:
    assert report.skipped == {"not_sampled": 11, "queue_full": 7}


def test_mismatches_by_path_most_frequent_first(report: CapabilityReport) -> None:
    summary = [(p.path, p.count, p.critical_count, p.kinds, p.noisy) for p in report.paths]
    assert summary == [
        ("$.fee", 4, 0, ("value",), False),
        ("$.amount", 2, 2, ("value",), False),
        ("$.creditor.iban", 1, 0, ("value",), False),
        ("$.memo", 1, 0, ("missing_in_primary",), False),
        ("$.status", 1, 1, ("value",), True),
        ("status", 1, 0, ("status",), False),
    ]
    fee = report.paths[0]
    assert (fee.first_seen, fee.last_seen) == (w.AT["fee-1"], w.AT["fee-4"])


def test_up_to_three_examples_per_path_newest_first_with_masked_values_as_stored(report: CapabilityReport) -> None:
    by_path = {p.path: p for p in report.paths}
    assert by_path["$.fee"].examples == tuple(
        PathExample(f"fee-{n}", w.AT[f"fee-{n}"], '"0.50"', f'"0.0{n}"') for n in (4, 3, 2)
    )
    assert [e.request_id for e in by_path["$.amount"].examples] == ["amount-2", "amount-1"]
    (iban,) = by_path["$.creditor.iban"].examples
    assert (iban.primary, iban.shadow) == (w.MASKED_IBAN_PRIMARY, w.MASKED_IBAN_SHADOW)
    (memo,) = by_path["$.memo"].examples
    assert (memo.primary, memo.shadow) == (None, w.MARKUP)


def test_noise_is_listed_apart_and_never_hides_a_critical_path(report: CapabilityReport) -> None:
    assert [(n.path, n.seen, n.in_window, n.critical) for n in report.noise] == [
        ("$.created_at", 40, 6, False),
        ("$.status", 2, 1, True),
    ]
    assert "$.created_at" not in {p.path for p in report.paths}
    created = report.noise[0]
    assert (created.first_seen, created.last_seen) == (w.BASE - timedelta(days=2), w.BASE + timedelta(hours=20))


def test_another_capabilitys_noise_hides_nothing_and_its_rows_do_not_count(engine: sa.Engine) -> None:
    (balance,) = build_reports(engine, [("accounts.balance", w.SINCE, w.UNTIL)])
    assert (balance.comparisons, balance.mismatches, balance.skipped) == (3, 3, {"queue_full": 50})
    assert [n.path for n in balance.noise] == ["$.fee"]


def test_the_window_is_inclusive_at_since_and_exclusive_at_until(engine: sa.Engine) -> None:
    since = w.AT["fee-2"]
    (report,) = build_reports(engine, [(w.CAP, since, w.AT["fee-4"])])
    assert report.first_at == since
    assert report.last_at == w.AT["both-503"]
    assert [p.path for p in report.paths if p.path == "$.fee"] == ["$.fee"]
    assert report.paths[0].count == 2  # fee-2 and fee-3; fee-4 sits at the exclusive end
    (wider,) = build_reports(engine, [(w.CAP, w.SINCE, w.UNTIL + timedelta(seconds=1))])
    assert wider.comparisons == 39  # the row at UNTIL is counted once the end moves past it


def test_an_empty_window_has_zero_figures_but_keeps_learned_noise(engine: sa.Engine) -> None:
    since = w.BASE + timedelta(days=10)
    (report,) = build_reports(engine, [(w.CAP, since, since + timedelta(hours=1))])
    assert report.empty and report.comparisons == 0 and report.match_rate is None
    assert report.first_at is None and report.observed_s == 0.0
    assert report.paths == () and report.skipped == {}
    assert [n.in_window for n in report.noise] == [0, 0]


def test_one_snapshot_serves_several_capabilities_in_order(engine: sa.Engine) -> None:
    reports = build_reports(engine, [("accounts.balance", w.SINCE, w.UNTIL), (w.CAP, w.SINCE, w.UNTIL)])
    assert [r.capability for r in reports] == ["accounts.balance", w.CAP]
    assert [r.comparisons for r in reports] == [3, 38]


def test_reads_what_the_comparison_store_writes(new_database: Callable[[str], str]) -> None:
    from parallel_run.model import Comparison, Difference
    from parallel_run.store import ComparisonStore

    engine = make_engine(new_database("report_store"), pool_size=1)
    create_schema(engine)
    store = ComparisonStore(engine)
    at = w.BASE + timedelta(hours=1)

    def comparison(request_id: str, verdict: str, *diffs: Difference, shadow: int | None = 200) -> Comparison:
        return Comparison(at, "accounts.balance", request_id, "legacy", "cloud", 200, shadow, 5.0, 7.0, verdict, diffs)

    store.record([
        comparison("a", "match"),
        comparison("b", "mismatch", Difference("$.as_of", "value", '"1"', '"2"')),
        comparison("c", "mismatch", Difference("$.balance", "value", "10.0", "10.5", critical=True)),
        comparison("d", "shadow_timeout", shadow=None),
    ])  # fmt: skip
    store.add_noise("accounts.balance", ["$.as_of"], at)
    store.add_skips("accounts.balance", "queue_full", 2, at)
    (report,) = build_reports(engine, [("accounts.balance", w.SINCE, w.UNTIL)])
    assert (report.comparisons, report.matches, report.mismatches, report.shadow_timeouts) == (4, 2, 1, 1)
    assert report.critical_mismatches == 1 and report.critical_paths == ("$.balance",)
    assert [(n.path, n.in_window) for n in report.noise] == [("$.as_of", 1)]
    assert report.skipped == {"queue_full": 2}


def test_a_difference_beneath_a_noise_path_is_noise_as_the_guard_counts_it(new_database: Callable[[str], str]) -> None:
    from parallel_run.model import Comparison, Difference
    from parallel_run.store import ComparisonStore

    engine = make_engine(new_database("report_beneath"), pool_size=1)
    create_schema(engine)
    store = ComparisonStore(engine)
    at = w.BASE + timedelta(hours=1)
    diff = Difference("$.recent[*].amount", "value", "1", "2")
    store.record([Comparison(at, "accounts.balance", "a", "legacy", "cloud", 200, 200, 5.0, 7.0, "mismatch", (diff,))])
    store.add_noise("accounts.balance", ["$.recent"], at)
    (report,) = build_reports(engine, [("accounts.balance", w.SINCE, w.UNTIL)])
    assert (report.matches, report.mismatches) == (1, 0)
    assert store.window("accounts.balance", w.SINCE).mismatches == report.mismatches
