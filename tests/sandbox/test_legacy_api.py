"""The legacy core-banking API under real gunicorn: balances, payments, inquiries and profile updates."""

from __future__ import annotations

import re

import pytest
import requests
from sqlalchemy import text

from sandbox.seed import customer
from tests.sandbox.conftest import CUSTOMERS, Running
from tests.sandbox.support import acct, legacy_balance, legacy_inquiry, legacy_pay, ref

HUGE = 10**12  # 10,000,000,000.00: more than any seeded balance


def test_balance_answers_the_seeded_balance_in_cents(legacy: Running) -> None:
    response = requests.get(legacy.url + "/CBS/ACCT/BAL", params={"ACCTNO": acct(7)}, timeout=10)
    body = response.json()
    assert response.status_code == 200
    assert body["RC"] == "00" and body["ACCTNO"] == "0000000007" and body["CCY"] == "EUR"
    assert body["CURBAL"] == body["AVLBAL"] and isinstance(body["CURBAL"], int)
    assert re.fullmatch(r"20[0-9]{6}", body["ASOFDT"])
    assert list(body) == ["RC", "ACCTNO", "CURBAL", "AVLBAL", "CCY", "ASOFDT"]


def test_balance_of_an_unknown_account_is_rc_14_with_http_200(legacy: Running) -> None:
    response = requests.get(legacy.url + "/CBS/ACCT/BAL", params={"ACCTNO": acct(99_999)}, timeout=10)
    assert response.status_code == 200
    assert response.json() == {"RC": "14", "RCDESC": "NO SUCH ACCOUNT"}


@pytest.mark.parametrize("acctno", ["7", "00000000007", "00000000AB", ""])
def test_balance_needs_exactly_ten_digits(legacy: Running, acctno: str) -> None:
    response = requests.get(legacy.url + "/CBS/ACCT/BAL", params={"ACCTNO": acctno}, timeout=10)
    assert response.status_code == 400
    assert response.json()["RC"] == "30" and response.json()["RCDESC"].startswith("FORMAT ERROR")


def test_payment_posts_double_entry_and_moves_both_balances(legacy: Running) -> None:
    before = (legacy_balance(legacy.url, 1), legacy_balance(legacy.url, 2))
    refno = ref()
    body = legacy_pay(legacy.url, refno, 1, 2, 1234, narr="rent").json()
    assert body["RC"] == "00" and body["STAT"] == "PSTD" and body["DUPFLG"] == "N"
    assert re.fullmatch(r"P[0-9]{12}", body["PAYID"])
    assert re.fullmatch(r"[0-9]{8}", body["POSTDT"]) and re.fullmatch(r"[0-9]{6}", body["POSTTM"])
    assert (body["REFNO"], body["DRACCT"], body["CRACCT"], body["AMTCENTS"], body["NARR"]) == (
        refno, acct(1), acct(2), 1234, "rent",
    )  # fmt: skip
    assert (legacy_balance(legacy.url, 1), legacy_balance(legacy.url, 2)) == (before[0] - 1234, before[1] + 1234)
    with legacy.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT acctno, amtcents FROM cbs.ledger WHERE payid = :p ORDER BY amtcents"), {"p": body["PAYID"]}
        ).all()
    assert [tuple(r) for r in rows] == [(acct(1), -1234), (acct(2), 1234)]


def test_replaying_a_refno_returns_the_stored_record_and_posts_once(legacy: Running) -> None:
    refno = ref()
    first = legacy_pay(legacy.url, refno, 3, 4, 500).json()
    balance = legacy_balance(legacy.url, 3)
    again = legacy_pay(legacy.url, refno, 3, 4, 500, narr="a different narrative is not a different payment").json()
    assert again["DUPFLG"] == "Y"
    assert {k: v for k, v in again.items() if k != "DUPFLG"} == {k: v for k, v in first.items() if k != "DUPFLG"}
    assert legacy_balance(legacy.url, 3) == balance
    assert legacy_inquiry(legacy.url, refno)["PAYID"] == first["PAYID"]
    with legacy.engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM cbs.payments WHERE refno = :r"), {"r": refno}).scalar_one()
    assert count == 1


@pytest.mark.parametrize(("cr", "cents", "ccy"), [(4, 501, "EUR"), (5, 500, "EUR"), (4, 500, "USD")])
def test_same_refno_with_different_details_is_rc_94(legacy: Running, cr: int, cents: int, ccy: str) -> None:
    refno = ref()
    assert legacy_pay(legacy.url, refno, 3, 4, 500).json()["RC"] == "00"
    assert legacy_pay(legacy.url, refno, 3, cr, cents, ccy=ccy).json() == {"RC": "94", "RCDESC": "DUPLICATE REFERENCE"}


def test_overdraft_is_recorded_as_rejected_and_replays_the_same_rejection(legacy: Running) -> None:
    before = legacy.ledger()
    refno = ref()
    body = legacy_pay(legacy.url, refno, 5, 6, HUGE).json()
    assert (body["RC"], body["RCDESC"], body["STAT"], body["DUPFLG"]) == ("51", "INSUFFICIENT FUNDS", "RJCT", "N")
    again = legacy_pay(legacy.url, refno, 5, 6, HUGE).json()
    assert (again["RC"], again["STAT"], again["PAYID"], again["DUPFLG"]) == ("51", "RJCT", body["PAYID"], "Y")
    inquiry = legacy_inquiry(legacy.url, refno)
    assert inquiry["STAT"] == "RJCT" and inquiry["RC"] == "51" and "DUPFLG" not in inquiry
    after = legacy.ledger()
    assert after["total_cents"] == before["total_cents"] and after["ledger_entries"] == before["ledger_entries"]
    assert after["rejected_payments"] == before["rejected_payments"] + 1


def test_spending_the_whole_balance_is_allowed_but_one_cent_more_is_not(legacy: Running) -> None:
    balance = legacy_balance(legacy.url, 8)
    assert legacy_pay(legacy.url, ref(), 8, 9, balance + 1).json()["RC"] == "51"
    assert legacy_pay(legacy.url, ref(), 8, 9, balance).json()["RC"] == "00"
    assert legacy_balance(legacy.url, 8) == 0
    assert legacy_pay(legacy.url, ref(), 9, 8, balance).json()["RC"] == "00"  # give it back


@pytest.mark.parametrize(
    ("dr", "cr", "cents", "ccy", "expected"),
    [
        (1, 2, 0, "EUR", {"RC": "13", "RCDESC": "INVALID AMOUNT"}),
        (1, 2, -5, "EUR", {"RC": "13", "RCDESC": "INVALID AMOUNT"}),
        (1, 2, 10.5, "EUR", {"RC": "13", "RCDESC": "INVALID AMOUNT"}),
        (1, 2, "100", "EUR", {"RC": "13", "RCDESC": "INVALID AMOUNT"}),
        (1, 2, True, "EUR", {"RC": "13", "RCDESC": "INVALID AMOUNT"}),
        (1, 1, 100, "EUR", {"RC": "12", "RCDESC": "INVALID TRANSACTION"}),
        (1, 2, 100, "USD", {"RC": "12", "RCDESC": "INVALID TRANSACTION"}),
        (1, 99_999, 100, "EUR", {"RC": "14", "RCDESC": "NO SUCH ACCOUNT"}),
        (99_999, 1, 100, "EUR", {"RC": "14", "RCDESC": "NO SUCH ACCOUNT"}),
    ],
)
def test_business_refusals_answer_http_200_and_record_nothing(
    legacy: Running, dr: int, cr: int, cents: object, ccy: str, expected: dict[str, str]
) -> None:
    refno = ref()
    response = legacy_pay(legacy.url, refno, dr, cr, cents, ccy=ccy)
    assert response.status_code == 200 and response.json() == expected
    assert legacy_inquiry(legacy.url, refno) == {"RC": "25", "RCDESC": "RECORD NOT FOUND"}


@pytest.mark.parametrize(
    "body",
    [
        {"DRACCT": acct(1), "CRACCT": acct(2), "AMTCENTS": 1, "CCY": "EUR"},
        {"REFNO": "x" * 65, "DRACCT": acct(1), "CRACCT": acct(2), "AMTCENTS": 1, "CCY": "EUR"},
        {"REFNO": "r", "DRACCT": "1", "CRACCT": acct(2), "AMTCENTS": 1, "CCY": "EUR"},
        {"REFNO": "r", "DRACCT": acct(1), "CRACCT": acct(2), "AMTCENTS": 1, "CCY": "eur"},
        {"REFNO": "r", "DRACCT": acct(1), "CRACCT": acct(2), "CCY": "EUR"},
        ["not", "an", "object"],
    ],
)
def test_malformed_payments_are_http_400_rc_30(legacy: Running, body: object) -> None:
    response = requests.post(legacy.url + "/CBS/PAYMT", json=body, timeout=10)
    assert response.status_code == 400 and response.json()["RC"] == "30"


def test_payment_body_is_parsed_as_json_without_a_content_type(legacy: Running) -> None:
    refno = ref()
    raw = f'{{"REFNO":"{refno}","DRACCT":"{acct(1)}","CRACCT":"{acct(2)}","AMTCENTS":1,"CCY":"EUR"}}'
    response = requests.post(legacy.url + "/CBS/PAYMT", data=raw, headers={"Content-Type": "text/plain"}, timeout=10)
    assert response.json()["RC"] == "00"
    assert requests.post(legacy.url + "/CBS/PAYMT", data="{not json", timeout=10).status_code == 400


def test_payment_inquiry_finds_the_posted_record_or_rc_25(legacy: Running) -> None:
    refno = ref()
    posted = legacy_pay(legacy.url, refno, 10, 11, 77).json()
    inquiry = legacy_inquiry(legacy.url, refno)
    assert inquiry == {k: v for k, v in posted.items() if k != "DUPFLG"}
    assert legacy_inquiry(legacy.url, ref()) == {"RC": "25", "RCDESC": "RECORD NOT FOUND"}
    assert requests.get(legacy.url + "/CBS/PAYMT/INQ", timeout=10).status_code == 400


def test_customer_inquiry_answers_the_seeded_profile(legacy: Running) -> None:
    seeded = customer(21)
    body = requests.get(legacy.url + "/CBS/CUST/INQ", params={"CUSTNO": acct(21)}, timeout=10).json()
    assert body == {
        "RC": "00", "CUSTNO": acct(21), "NAME": seeded.name, "EMAIL": seeded.email, "PHONE": seeded.phone,
        "ADDR1": seeded.address_line1, "CITY": seeded.city, "POSTCD": seeded.postcode,
        "LSTUPDDT": seeded.open_date.strftime("%Y%m%d"),
    }  # fmt: skip
    unknown = requests.get(legacy.url + "/CBS/CUST/INQ", params={"CUSTNO": acct(99_999)}, timeout=10).json()
    assert unknown["RC"] == "14"


def test_profile_update_changes_only_the_given_fields(legacy: Running) -> None:
    before = requests.get(legacy.url + "/CBS/CUST/INQ", params={"CUSTNO": acct(22)}, timeout=10).json()
    change = {"CUSTNO": acct(22), "EMAIL": "New.Address@Example.COM", "CITY": "Zwolle"}
    body = requests.post(legacy.url + "/CBS/CUST/PROFUPD", json=change, timeout=10).json()
    assert body["RC"] == "00" and body["DUPFLG"] == "N"
    assert body["EMAIL"] == "New.Address@Example.COM"  # stored exactly as sent: legacy normalises nothing
    assert body["CITY"] == "Zwolle" and body["PHONE"] == before["PHONE"] and body["NAME"] == before["NAME"]
    assert re.fullmatch(r"[0-9]{8}", body["LSTUPDDT"]) and body["LSTUPDDT"] != before["LSTUPDDT"]
    inquiry = requests.get(legacy.url + "/CBS/CUST/INQ", params={"CUSTNO": acct(22)}, timeout=10).json()
    assert inquiry == {k: v for k, v in body.items() if k != "DUPFLG"}


def test_a_repeated_updref_is_not_applied_again(legacy: Running) -> None:
    updref = ref("U")
    first = {"CUSTNO": acct(23), "PHONE": "+31 6 11111111", "UPDREF": updref}
    assert requests.post(legacy.url + "/CBS/CUST/PROFUPD", json=first, timeout=10).json()["DUPFLG"] == "N"
    second = {"CUSTNO": acct(23), "PHONE": "+31 6 22222222", "UPDREF": updref}
    again = requests.post(legacy.url + "/CBS/CUST/PROFUPD", json=second, timeout=10).json()
    assert again["RC"] == "00" and again["DUPFLG"] == "Y" and again["PHONE"] == "+31 6 11111111"
    other_customer = {"CUSTNO": acct(24), "PHONE": "+31 6 33333333", "UPDREF": updref}
    assert requests.post(legacy.url + "/CBS/CUST/PROFUPD", json=other_customer, timeout=10).json()["RC"] == "94"


@pytest.mark.parametrize(
    "body",
    [
        {"CUSTNO": acct(25), "EMAIL": "a" * 49 + "@example.com"},  # 61 characters
        {"CUSTNO": acct(25), "POSTCD": "12345678901"},
        {"CUSTNO": acct(25), "PHONE": 123},
        {"CUSTNO": acct(25)},
        {"CUSTNO": "25", "EMAIL": "x@example.com"},
    ],
)
def test_malformed_profile_updates_are_http_400_rc_30_and_change_nothing(legacy: Running, body: object) -> None:
    before = requests.get(legacy.url + "/CBS/CUST/INQ", params={"CUSTNO": acct(25)}, timeout=10).json()
    response = requests.post(legacy.url + "/CBS/CUST/PROFUPD", json=body, timeout=10)
    assert response.status_code == 400 and response.json()["RC"] == "30"
    assert requests.get(legacy.url + "/CBS/CUST/INQ", params={"CUSTNO": acct(25)}, timeout=10).json() == before


def test_profile_update_of_an_unknown_customer_is_rc_14(legacy: Running) -> None:
    body = {"CUSTNO": acct(99_999), "CITY": "Nowhere", "UPDREF": ref("U")}
    assert requests.post(legacy.url + "/CBS/CUST/PROFUPD", json=body, timeout=10).json()["RC"] == "14"


def test_health_ledger_and_request_id(legacy: Running) -> None:
    health = requests.get(legacy.url + "/healthz", headers={"X-Request-ID": "req-42"}, timeout=10)
    assert health.status_code == 200 and health.headers["X-Request-ID"] == "req-42"
    ledger = legacy.ledger()
    assert ledger["accounts"] == CUSTOMERS and ledger["ledger_sum_cents"] == 0 and ledger["unbalanced_payments"] == 0
    assert ledger["ledger_entries"] == 2 * ledger["posted_payments"]
    assert ledger["max_postings_per_refno"] <= 1
    assert requests.get(legacy.url + "/CBS/NOPE", timeout=10).json()["RC"] == "30"
