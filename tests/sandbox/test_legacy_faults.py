"""Run-time fault injection on the legacy core under real gunicorn (2 workers sharing one faults file)."""

from __future__ import annotations

import time

import pytest
import requests
from sqlalchemy import text

from core.procs import wait_until
from tests.sandbox.conftest import Running
from tests.sandbox.support import acct, legacy_balance, legacy_inquiry, legacy_pay, ref

HANG_S = 1.5
CLIENT_TIMEOUT_S = 0.5


def test_admin_shows_sets_merges_over_defaults_and_resets(legacy_faults: Running) -> None:
    base = legacy_faults.url + "/__admin/faults"
    defaults = requests.get(base, timeout=10).json()
    assert defaults == {
        "latency_ms": 0.0, "error_rate": 0.0, "error_status": 503, "timeout_rate": 0.0,
        "commit_timeout_rate": 0.0, "hang_s": 10.0, "paths": ["/CBS/"],
    }  # fmt: skip
    legacy_faults.set_faults(latency_ms=5)
    active = legacy_faults.set_faults(error_rate=0.25, error_status=500)
    # Each PUT merges over the defaults, not over the previous setting.
    assert active == {**defaults, "error_rate": 0.25, "error_status": 500}
    assert requests.get(base, timeout=10).json() == active
    assert requests.delete(base, timeout=10).json() == defaults
    assert requests.get(base, timeout=10).json() == defaults


@pytest.mark.parametrize(
    "bad",
    [{"error_rate": 2}, {"error_status": 404}, {"paths": "/CBS/"}, {"hang_s": -1}, {"surprise": 1}, [1]],
)
def test_admin_refuses_a_bad_setting_and_keeps_the_old_one(legacy_faults: Running, bad: object) -> None:
    active = legacy_faults.set_faults(latency_ms=1)
    response = requests.put(legacy_faults.url + "/__admin/faults", json=bad, timeout=10)
    assert response.status_code == 400 and response.json()["error"]
    assert requests.get(legacy_faults.url + "/__admin/faults", timeout=10).json() == active


@pytest.mark.parametrize("status", [503, 500])
def test_error_rate_answers_rc_96_without_doing_anything(legacy_faults: Running, status: int) -> None:
    before = legacy_faults.ledger()
    legacy_faults.set_faults(error_rate=1.0, error_status=status)
    refno = ref("E")
    # Fresh connections, so both gunicorn workers answer some of them: the setting is shared through the file.
    for _ in range(10):
        response = legacy_pay(legacy_faults.url, refno, 1, 2, 100)
        assert response.status_code == status
        assert response.json() == {"RC": "96", "RCDESC": "SYSTEM MALFUNCTION"}
    legacy_faults.reset_faults()
    assert legacy_inquiry(legacy_faults.url, refno)["RC"] == "25"
    assert legacy_faults.ledger() == before


def test_faults_spare_health_admin_and_paths_not_listed(legacy_faults: Running) -> None:
    legacy_faults.set_faults(error_rate=1.0, paths=["/", "/CBS/PAYMT$"])
    assert requests.get(legacy_faults.url + "/healthz", timeout=10).status_code == 200
    assert requests.get(legacy_faults.url + "/__admin/ledger", timeout=10).status_code == 200
    legacy_faults.set_faults(error_rate=1.0, paths=["/CBS/PAYMT$"])
    # A trailing `$` matches the path exactly, so the inquiry is not faulted.
    assert legacy_inquiry(legacy_faults.url, ref())["RC"] == "25"
    assert legacy_pay(legacy_faults.url, ref(), 1, 2, 1).status_code == 503
    legacy_faults.set_faults(error_rate=1.0, paths=["/CBS/PAYMT"])
    assert requests.get(legacy_faults.url + "/CBS/PAYMT/INQ", params={"REFNO": "x"}, timeout=10).status_code == 503


def test_latency_delays_the_answer(legacy_faults: Running) -> None:
    legacy_faults.set_faults(latency_ms=400)
    started = time.monotonic()
    body = requests.get(legacy_faults.url + "/CBS/ACCT/BAL", params={"ACCTNO": acct(1)}, timeout=10).json()
    assert time.monotonic() - started >= 0.4 and body["RC"] == "00"


def test_a_timed_out_request_is_lost_and_never_executed(legacy_faults: Running) -> None:
    before = legacy_faults.ledger()
    legacy_faults.set_faults(timeout_rate=1.0, hang_s=HANG_S)
    refno = ref("L")
    with pytest.raises(requests.Timeout):
        legacy_pay(legacy_faults.url, refno, 1, 2, 100, timeout=CLIENT_TIMEOUT_S)
    legacy_faults.reset_faults()

    def executed() -> bool:
        return legacy_inquiry(legacy_faults.url, refno)["RC"] != "25"

    # Watch past the end of the server's hang: a wrong implementation would do the work after hanging.
    with pytest.raises(TimeoutError):
        wait_until(executed, HANG_S + 0.5, interval=0.1, what="the lost payment to appear")
    assert legacy_faults.ledger() == before


def test_a_timeout_answers_504_after_the_hang(legacy_faults: Running) -> None:
    legacy_faults.set_faults(timeout_rate=1.0, hang_s=0.2)
    refno = ref("L")
    response = legacy_pay(legacy_faults.url, refno, 1, 2, 100)
    assert response.status_code == 504 and response.json()["RC"] == "91"
    legacy_faults.reset_faults()
    assert legacy_inquiry(legacy_faults.url, refno)["RC"] == "25"


def test_a_commit_timeout_hides_a_payment_that_was_posted_exactly_once(legacy_faults: Running) -> None:
    before = legacy_faults.ledger()
    balance = legacy_balance(legacy_faults.url, 41)
    legacy_faults.set_faults(commit_timeout_rate=1.0, hang_s=HANG_S)
    refno = ref("K")
    with pytest.raises(requests.Timeout):
        legacy_pay(legacy_faults.url, refno, 41, 42, 300, timeout=CLIENT_TIMEOUT_S)
    legacy_faults.reset_faults()
    inquiry = legacy_inquiry(legacy_faults.url, refno)
    assert inquiry["RC"] == "00" and inquiry["STAT"] == "PSTD"
    assert legacy_balance(legacy_faults.url, 41) == balance - 300
    replay = legacy_pay(legacy_faults.url, refno, 41, 42, 300).json()
    assert replay["DUPFLG"] == "Y" and replay["PAYID"] == inquiry["PAYID"]
    with legacy_faults.engine.connect() as conn:
        entries = conn.execute(text("SELECT count(*) FROM cbs.ledger WHERE payid = :p"), {"p": inquiry["PAYID"]})
        assert entries.scalar_one() == 2
    after = legacy_faults.ledger()
    assert after["posted_payments"] == before["posted_payments"] + 1 and after["max_postings_per_refno"] == 1
    assert after["total_cents"] == before["total_cents"]


def test_a_commit_timeout_applies_to_payments_only(legacy_faults: Running) -> None:
    legacy_faults.set_faults(commit_timeout_rate=1.0, hang_s=HANG_S)
    assert requests.get(legacy_faults.url + "/CBS/ACCT/BAL", params={"ACCTNO": acct(1)}, timeout=5).status_code == 200
