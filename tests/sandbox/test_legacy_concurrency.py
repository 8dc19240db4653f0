"""Concurrent payments against the legacy core under real gunicorn: no deadlock, no double posting, money conserved."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import text

from tests.sandbox.conftest import Running
from tests.sandbox.support import legacy_balance, legacy_pay, ref

ACCOUNTS = (31, 32, 33, 34, 35)


def test_fifty_concurrent_payments_across_five_accounts_conserve_money(legacy: Running) -> None:
    rng = random.Random(7)
    orders = []
    for i in range(50):
        dr, cr = rng.sample(ACCOUNTS, 2)
        # Every tenth order asks for more than any account holds, so rejections race with postings too.
        cents = 10**12 if i % 10 == 9 else rng.randint(1, 20_000)  # 45 x 200.00 < any of these balances
        orders.append((ref("C"), dr, cr, cents))
    balances_before = {a: legacy_balance(legacy.url, a) for a in ACCOUNTS}
    before = legacy.ledger()

    def pay(order: tuple[str, int, int, int]) -> dict[str, Any]:
        refno, dr, cr, cents = order
        return dict(legacy_pay(legacy.url, refno, dr, cr, cents, timeout=30).json())

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(pay, orders))

    assert [r["RC"] for r in results].count("51") == 5
    assert all(r["RC"] == "00" and r["DUPFLG"] == "N" for r, o in zip(results, orders, strict=True) if o[3] < 10**12)
    expected = dict(balances_before)
    for (_, dr, cr, cents), result in zip(orders, results, strict=True):
        if result["STAT"] == "PSTD":
            expected[dr] -= cents
            expected[cr] += cents
    assert {a: legacy_balance(legacy.url, a) for a in ACCOUNTS} == expected
    after = legacy.ledger()
    assert after["total_cents"] == before["total_cents"]
    assert after["ledger_sum_cents"] == 0 and after["unbalanced_payments"] == 0 and after["stray_ledger_entries"] == 0
    assert after["posted_payments"] == before["posted_payments"] + 45
    assert after["ledger_entries"] == before["ledger_entries"] + 90
    assert after["max_postings_per_refno"] == 1


def test_concurrent_requests_with_one_refno_post_once_and_all_see_the_winner(legacy: Running) -> None:
    refno, racers = ref("R"), 10
    balance = legacy_balance(legacy.url, 36)
    start = threading.Barrier(racers)

    def race(_: int) -> dict[str, Any]:
        start.wait()
        return dict(legacy_pay(legacy.url, refno, 36, 37, 2_500, timeout=30).json())

    with ThreadPoolExecutor(max_workers=racers) as pool:
        results = list(pool.map(race, range(racers)))

    assert {r["RC"] for r in results} == {"00"}
    assert len({r["PAYID"] for r in results}) == 1
    assert sorted(r["DUPFLG"] for r in results) == ["N"] + ["Y"] * (racers - 1)
    assert legacy_balance(legacy.url, 36) == balance - 2_500
    with legacy.engine.connect() as conn:
        entries = conn.execute(
            text("SELECT count(*) FROM cbs.ledger WHERE payid = :p"), {"p": results[0]["PAYID"]}
        ).scalar_one()
    assert entries == 2


def test_concurrent_opposite_payments_between_two_accounts_do_not_deadlock(legacy: Running) -> None:
    before = (legacy_balance(legacy.url, 38), legacy_balance(legacy.url, 39))
    orders = [(ref("D"), 38, 39) if i % 2 else (ref("D"), 39, 38) for i in range(40)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda o: legacy_pay(legacy.url, o[0], o[1], o[2], 100, timeout=30), orders))
    assert all(r.status_code == 200 and r.json()["RC"] == "00" for r in results)
    assert (legacy_balance(legacy.url, 38), legacy_balance(legacy.url, 39)) == before
