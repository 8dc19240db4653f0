"""The shadow side with fakes: the pool never blocks, evidence is batched, and each safety rule of a shadow holds."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.upstream import UpstreamTimeout
from core.calls import Call, Outcome
from core.procs import wait_until
from core.routestore import RouteState
from facade.dispatch import InDoubt
from facade.metrics import FacadeMetrics
from facade.modes import Routed
from facade.parallel import SHADOW_HEADERS, ParallelMode, Shadower, sampled
from facade.shadow import Evidence, ShadowPool
from parallel_run.model import Comparison
from tests.builders import call, shipped_rules

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class FakeStore:
    def __init__(self) -> None:
        self.comparisons: list[Comparison] = []
        self.noise: dict[str, set[str]] = {}
        self.skips: dict[tuple[str, str], int] = {}
        self.fail = False

    def record(self, comparisons: Any) -> None:
        if self.fail:
            raise OSError("database down")
        self.comparisons += comparisons

    def add_noise(self, capability: str, paths: Any, at: datetime) -> None:
        self.noise.setdefault(capability, set()).update(paths)

    def noise_paths(self, capability: str) -> frozenset[str]:
        return frozenset(self.noise.get(capability, ()))

    def add_skips(self, capability: str, reason: str, count: int, at: datetime) -> None:
        self.skips[(capability, reason)] = self.skips.get((capability, reason), 0) + count


class FakeDispatcher:
    """Answers per side from a table; records what each call carried."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers, self.sent = answers, []

    def send(self, side: str, cap: Any, call: Call, *, headers: Any = None, read_timeout_ms: Any = None) -> Outcome:
        self.sent.append((side, dict(headers or {}), read_timeout_ms))
        answer = self.answers[side]
        if isinstance(answer, Exception):
            raise answer
        return answer() if callable(answer) else answer


class InlinePool:
    def __init__(self, accept: bool = True) -> None:
        self.accept = accept

    def submit(self, job: Any) -> bool:
        if self.accept:
            job()
        return self.accept


def routed(capability: str, body: Any = None, request_id: str = "req-1") -> Routed:
    cap = shipped_rules().capabilities[capability]
    path = "/v1/payments" if cap.is_write else "/v1/accounts/1/balance"
    params = {} if cap.is_write else {"account_id": "1"}
    c = call(capability, cap.method, path, body=body, resource_id="pay_1" if cap.is_write else None, **params)
    return Routed(replace(c, request_id=request_id), cap, RouteState(capability, "parallel", 0, 1))


def shadower(answers: dict[str, Any], pool: Any = None) -> tuple[Shadower, FakeDispatcher, FakeStore, Evidence]:
    store, dispatcher = FakeStore(), FakeDispatcher(answers)
    evidence = Evidence(store, clock=lambda: NOW)
    s = Shadower(dispatcher, pool or InlinePool(), evidence, FacadeMetrics(), lambda: NOW)  # type: ignore[arg-type]
    return s, dispatcher, store, evidence


BALANCE = {"account_id": "1", "currency": "EUR", "balance": "10.00", "available": "10.00"}


def test_the_pool_refuses_at_once_when_full_and_runs_what_it_took() -> None:
    release, ran = threading.Event(), []
    pool = ShadowPool(workers=1, capacity=1)
    try:
        assert pool.submit(release.wait)
        wait_until(lambda: pool.depth == 0, 2, what="the worker to take the first job")
        assert pool.submit(lambda: ran.append(1))
        assert not pool.submit(lambda: ran.append(2))  # full: refused, not queued, not blocking
        release.set()
        wait_until(lambda: ran == [1], 2, what="the queued job")
    finally:
        release.set()
        pool.close()
    assert not pool.submit(lambda: None)


def test_evidence_is_written_in_batches_and_kept_when_the_store_fails() -> None:
    store = FakeStore()
    evidence = Evidence(store, clock=lambda: NOW)
    comparison = Comparison(NOW, "accounts.balance", "r1", "legacy", "cloud", 200, 200, 1.0, 2.0, "match")
    evidence.comparison(comparison)
    evidence.skip("accounts.balance", "queue_full")
    store.fail = True
    with pytest.raises(OSError):
        evidence.flush()
    store.fail = False
    evidence.skip("accounts.balance", "queue_full")
    assert evidence.flush() == 1
    assert store.comparisons == [comparison] and store.skips == {("accounts.balance", "queue_full"): 2}


def test_a_read_is_compared_with_the_shadow_header_and_timeout_and_noise_is_learnt() -> None:
    answers = iter([{**BALANCE, "as_of": "2026-11-21"}, {**BALANCE, "as_of": "2026-11-21", "seq": 2}])
    s, dispatcher, store, evidence = shadower({
        "legacy": lambda: Outcome(200, next(answers), upstream="legacy"),
        "cloud": Outcome(200, raw=b'{"account_id":"1","currency":"EUR","balance":"10.00","available":"10.00",'
                                  b'"as_of":"2026-11-21T10:00:00.000Z","seq":3}'),
    })  # fmt: skip
    r = routed("accounts.balance")
    r = replace(r, cap=replace(r.cap, parallel=replace(r.cap.parallel, noise_percent=100)))
    outcome = ParallelMode(dispatcher, s).handle(r)  # type: ignore[arg-type]
    assert outcome.body == {**BALANCE, "as_of": "2026-11-21"}
    assert dispatcher.sent[1] == ("cloud", SHADOW_HEADERS, 1000) and dispatcher.sent[2][0] == "legacy"
    evidence.flush()
    (comparison,) = store.comparisons
    # $.seq differed between two legacy answers: noise, so its difference does not make a mismatch.
    assert store.noise == {"accounts.balance": {"$.seq"}}
    assert comparison.verdict == "match" and [d.path for d in comparison.differences] == ["$.seq"]
    assert comparison.request_id == "req-1" and comparison.shadow_side == "cloud"


def test_a_write_goes_to_cloud_in_dry_run_and_a_difference_is_a_mismatch() -> None:
    paid = {"payment_id": "pay_1", "status": "posted", "amount": "1.00", "description": "  a  b "}
    s, dispatcher, store, evidence = shadower({"cloud": Outcome(201, {**paid, "description": "a b", "dry_run": True})})
    s.shadow(routed("payments.create", body={"amount": "1.00"}), Outcome(201, paid), "legacy", "cloud")
    evidence.flush()
    (comparison,) = store.comparisons
    assert dispatcher.sent == [("cloud", SHADOW_HEADERS, 2000)]
    assert comparison.verdict == "mismatch" and [d.path for d in comparison.differences] == ["$.description"]


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        (InDoubt("cloud"), "shadow_error"),
        (Outcome(503, {"title": "down"}), "shadow_error"),
        (Outcome(504, {"title": "slow"}), "shadow_timeout"),
    ],
)
def test_shadow_failures_are_recorded_as_such(answer: Any, verdict: str) -> None:
    s, _, store, evidence = shadower({"cloud": answer})
    s.shadow(routed("payments.create", body={}), Outcome(201, {}), "legacy", "cloud")
    evidence.flush()
    assert [c.verdict for c in store.comparisons] == [verdict]


def test_an_in_doubt_shadow_write_after_a_timeout_is_a_shadow_timeout() -> None:
    in_doubt = InDoubt("cloud")
    in_doubt.__cause__ = UpstreamTimeout("cloud")
    s, _, store, evidence = shadower({"cloud": in_doubt})
    s.shadow(routed("payments.create", body={}), Outcome(201, {}), "legacy", "cloud")
    evidence.flush()
    assert [c.verdict for c in store.comparisons] == ["shadow_timeout"]


def test_a_write_is_never_shadowed_to_legacy_and_skips_are_counted() -> None:
    s, dispatcher, store, evidence = shadower({}, pool=InlinePool(accept=False))
    s.shadow(routed("payments.create", body={}), Outcome(201, {}), "cloud", "legacy")
    s.shadow(routed("accounts.balance"), Outcome(200, BALANCE), "legacy", "cloud")
    evidence.flush()
    assert dispatcher.sent == []
    assert store.skips == {("payments.create", "write_not_shadowed"): 1, ("accounts.balance", "queue_full"): 1}


def test_sampling_is_stable_per_request_and_tracks_the_percentage() -> None:
    assert all(sampled(f"r{i}", "c", 100) for i in range(100)) and not any(sampled(f"r{i}", "c", 0) for i in range(100))
    assert sampled("r7", "c", 30) == sampled("r7", "c", 30)
    share = sum(sampled(f"r{i}", "c", 30) for i in range(10_000)) / 10_000
    assert 0.27 < share < 0.33
