"""The readiness verdict: each criterion fails on its own, in plain words; the gate reads its own window."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from core.db import make_engine
from core.migrate import create_schema
from core.rules import CapabilitySpec, ReadinessSpec
from parallel_run.report import fmt
from parallel_run.report.model import CapabilityReport, PathMismatch
from parallel_run.report.verdict import Verdict, gate_window, readiness, verdict_for
from tests.parallel_run import report_world as w

T0 = datetime(2025, 3, 3, tzinfo=UTC)
SPEC = ReadinessSpec(min_comparisons=1000, min_match_rate=0.999, max_critical_mismatches=0, window_s=86400)


def clean(**changes: object) -> CapabilityReport:
    """A report that passes SPEC on every criterion, with some figures changed."""
    base = CapabilityReport(
        "payments.create", T0, T0 + timedelta(days=2), comparisons=5000, matches=5000,
        first_at=T0, last_at=T0 + timedelta(hours=25),
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def amount_path(count: int) -> PathMismatch:
    return PathMismatch("$.amount", ("value",), count, count, T0, T0, ())


def test_a_clean_run_is_ready() -> None:
    assert readiness(clean(), SPEC) == Verdict(ready=True, failing=())
    assert readiness(clean(), SPEC).describe() == "READY"


def test_too_few_comparisons() -> None:
    verdict = readiness(clean(comparisons=312, matches=312), SPEC)
    assert verdict == Verdict(False, ("312 comparisons, at least 1000 needed",))


def test_shadow_failures_are_not_evidence() -> None:
    verdict = readiness(clean(comparisons=1040, matches=990, shadow_timeouts=30, shadow_errors=20), SPEC)
    assert verdict.failing == ("990 comparisons (not counting 50 shadow failures), at least 1000 needed",)


def test_match_rate_below_the_minimum() -> None:
    verdict = readiness(clean(comparisons=1000, matches=991, mismatches=9), SPEC)
    assert verdict.failing == ("match rate 99.1% below 99.9%",)


def test_a_rate_just_below_the_minimum_is_never_rounded_up_to_it() -> None:
    verdict = readiness(clean(comparisons=100_000, matches=99_899, mismatches=101), SPEC)
    assert verdict.failing == ("match rate 99.899% below 99.9%",)


def test_exactly_the_minimum_passes() -> None:
    assert readiness(clean(comparisons=1000, matches=999, mismatches=1), SPEC).ready


def test_critical_field_mismatches_name_their_paths() -> None:
    report = clean(comparisons=10_000, matches=9998, mismatches=2, critical_mismatches=2, paths=(amount_path(2),))
    assert readiness(report, SPEC).failing == ("2 critical-field mismatches ($.amount)",)
    allowing_one = replace(SPEC, max_critical_mismatches=1)
    assert readiness(report, allowing_one).failing == ("2 critical-field mismatches ($.amount), at most 1 allowed",)


def test_observation_too_short() -> None:
    verdict = readiness(clean(last_at=T0 + timedelta(hours=3, minutes=10)), SPEC)
    assert verdict.failing == ("observed for 3h 10m, at least 24h needed",)


def test_an_empty_report_fails_every_criterion_in_order() -> None:
    verdict = readiness(CapabilityReport("payments.create", T0, T0), SPEC)
    assert verdict.failing == (
        "0 comparisons, at least 1000 needed",
        "no match rate without answered comparisons, at least 99.9% needed",
        "observed for 0s, at least 24h needed",
    )
    assert verdict.describe().startswith("NOT READY: 0 comparisons")


def test_the_seeded_run_fails_on_exactly_what_it_shows(new_database: Callable[[str], str]) -> None:
    engine = make_engine(new_database("verdict"), pool_size=1)
    create_schema(engine)
    w.seed(engine)
    cap = CapabilitySpec("payments.create", "POST", "/v1/payments", "parallel", readiness=SPEC)
    # The gate looks back 48h from just after the last comparison: the early row (1h before BASE) counts too.
    now = w.AT["error-1"] + timedelta(minutes=1)
    verdict = verdict_for(engine, cap, now=now)
    assert verdict.failing == (
        "36 comparisons (not counting 3 shadow failures), at least 1000 needed",
        f"match rate {fmt.percent(26 / 36)} below 99.9%",
        "4 critical-field mismatches ($.amount, $.status)",
        "observed for 20h 30m, at least 24h needed",
    )
    lenient = ReadinessSpec(min_comparisons=30, min_match_rate=0.7, max_critical_mismatches=4, window_s=3600)
    now = w.AT["error-1"] + timedelta(minutes=1)
    assert verdict_for(engine, replace(cap, readiness=lenient), now=now) == Verdict(True, ())


@pytest.mark.parametrize(
    ("window_s", "lookback"), [(86400, timedelta(days=2)), (3600, timedelta(days=1)), (7 * 86400, timedelta(days=14))]
)
def test_the_gate_window_reaches_back_twice_the_observation_window_and_at_least_a_day(
    window_s: int, lookback: timedelta
) -> None:
    since, until = gate_window(ReadinessSpec(window_s=window_s), T0)
    assert T0 - since == lookback
    assert T0 < until <= T0 + timedelta(milliseconds=1)


def test_a_gate_without_evidence_refuses(new_database: Callable[[str], str]) -> None:
    engine: sa.Engine = make_engine(new_database("verdict"), pool_size=1)
    create_schema(engine)
    cap = CapabilitySpec("payments.get", "GET", "/v1/payments/<payment_id>", "parallel")
    assert not verdict_for(engine, cap).ready
