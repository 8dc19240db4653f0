"""The cloud portal API under real gunicorn: balances, payments with dry run, profiles and problem details."""

from __future__ import annotations

import random
import re
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import requests

from sandbox.seed import customer
from tests.sandbox.conftest import Running
from tests.sandbox.support import cloud_balance, cloud_pay, ref

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def assert_problem(response: requests.Response, status: int, slug: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = dict(response.json())
    assert body["status"] == status and str(body["type"]).endswith("/" + slug)
    assert body["title"] and "detail" in body
    return body


def test_balance_answers_the_seeded_balance_as_a_decimal_string(cloud: Running) -> None:
    body = requests.get(cloud.url + "/v1/accounts/7/balance", timeout=10).json()
    seeded = Decimal(customer(7).balance_cents) / 100
    assert body["account_id"] == "7" and body["currency"] == "EUR"
    assert body["balance"] == body["available"] == f"{seeded:.2f}"
    assert ISO_UTC.fullmatch(body["as_of"])


@pytest.mark.parametrize("account", ["99999", "abc", "-1"])
def test_balance_of_an_unknown_account_is_a_404_problem(cloud: Running, account: str) -> None:
    assert_problem(requests.get(f"{cloud.url}/v1/accounts/{account}/balance", timeout=10), 404, "account-not-found")


def test_payment_posts_and_moves_both_balances(cloud: Running) -> None:
    before = (Decimal(cloud_balance(cloud.url, 1)), Decimal(cloud_balance(cloud.url, 2)))
    payment_id = ref("pay_")
    response = cloud_pay(cloud.url, payment_id, 1, 2, "12.34")
    assert response.status_code == 201, response.text
    body = response.json()
    assert {k: v for k, v in body.items() if k != "posted_at"} == {
        "payment_id": payment_id, "status": "posted", "from_account": "1", "to_account": "2",
        "amount": "12.34", "currency": "EUR", "description": "test",
    }  # fmt: skip
    assert ISO_UTC.fullmatch(body["posted_at"])
    after = (Decimal(cloud_balance(cloud.url, 1)), Decimal(cloud_balance(cloud.url, 2)))
    assert after == (before[0] - Decimal("12.34"), before[1] + Decimal("12.34"))
    fetched = requests.get(f"{cloud.url}/v1/payments/{payment_id}", timeout=10)
    assert fetched.status_code == 200 and fetched.json() == body


def test_replaying_a_payment_id_returns_the_same_record_and_posts_once(cloud: Running) -> None:
    payment_id = ref("pay_")
    first = cloud_pay(cloud.url, payment_id, 3, 4, "5.00")
    balance = cloud_balance(cloud.url, 3)
    again = cloud_pay(cloud.url, payment_id, 3, 4, "5")  # the same amount, spelled differently
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert cloud_balance(cloud.url, 3) == balance
    conflict = assert_problem(cloud_pay(cloud.url, payment_id, 3, 4, "5.01"), 409, "idempotency-conflict")
    assert conflict["payment_id"] == payment_id


def test_insufficient_funds_is_a_recorded_422_with_the_rejection(cloud: Running) -> None:
    before = cloud.ledger()
    payment_id = ref("pay_")
    body = assert_problem(cloud_pay(cloud.url, payment_id, 5, 6, "99999999.00"), 422, "insufficient-funds")
    assert (body["payment_id"], body["payment_status"], body["reason"]) == (
        payment_id,
        "rejected",
        "insufficient_funds",
    )
    assert assert_problem(cloud_pay(cloud.url, payment_id, 5, 6, "99999999.00"), 422, "insufficient-funds") == body
    stored = requests.get(f"{cloud.url}/v1/payments/{payment_id}", timeout=10).json()
    assert stored["status"] == "rejected" and stored["reason"] == "insufficient_funds" and stored["posted_at"] is None
    after = cloud.ledger()
    assert after["total_balance"] == before["total_balance"] and after["ledger_entries"] == before["ledger_entries"]
    assert after["rejected_payments"] == before["rejected_payments"] + 1


def test_unknown_accounts_and_currency_mismatch_are_refused_and_not_recorded(cloud: Running) -> None:
    missing = ref("pay_")
    assert_problem(cloud_pay(cloud.url, missing, 1, 99_999, "1.00"), 404, "account-not-found")
    mismatch = ref("pay_")
    body = assert_problem(cloud_pay(cloud.url, mismatch, 1, 2, "1.00", currency="USD"), 422, "currency-mismatch")
    assert body["reason"] == "currency_mismatch"
    for payment_id in (missing, mismatch):
        assert_problem(requests.get(f"{cloud.url}/v1/payments/{payment_id}", timeout=10), 404, "payment-not-found")


@pytest.mark.parametrize(
    "change",
    [
        {"amount": "0.00"},
        {"amount": "1.005"},
        {"amount": 10},
        {"to_account": "1"},
        {"from_account": "0000x"},
        {"currency": "eur"},
        {"payment_id": ""},
        {"description": "x" * 141},
    ],
)
def test_invalid_payments_are_400_problems(cloud: Running, change: dict[str, object]) -> None:
    body = {"payment_id": ref("pay_"), "from_account": "1", "to_account": "2", "amount": "1.00", "currency": "EUR"}
    response = requests.post(cloud.url + "/v1/payments", json={**body, **change}, timeout=10)
    assert_problem(response, 400, "validation-error")


def test_a_dry_run_computes_the_outcome_but_writes_nothing(cloud: Running) -> None:
    before = cloud.ledger()
    balances = (cloud_balance(cloud.url, 11), cloud_balance(cloud.url, 12))
    payment_id = ref("pay_")
    response = cloud_pay(cloud.url, payment_id, 11, 12, "25.00", shadow=True)
    assert response.status_code == 201 and response.json()["dry_run"] is True
    assert response.json()["status"] == "posted" and response.json()["amount"] == "25.00"
    rejected = assert_problem(
        cloud_pay(cloud.url, ref("pay_"), 11, 12, "99999999.00", shadow=True), 422, "insufficient-funds"
    )
    assert rejected["dry_run"] is True and rejected["reason"] == "insufficient_funds"
    unknown = assert_problem(
        cloud_pay(cloud.url, ref("pay_"), 11, 99_999, "1.00", shadow=True), 404, "account-not-found"
    )
    assert unknown["dry_run"] is True
    assert cloud.ledger() == before
    assert (cloud_balance(cloud.url, 11), cloud_balance(cloud.url, 12)) == balances
    assert_problem(requests.get(f"{cloud.url}/v1/payments/{payment_id}", timeout=10), 404, "payment-not-found")
    # The same payment for real afterwards is a first posting, not a replay of the dry run.
    real = cloud_pay(cloud.url, payment_id, 11, 12, "25.00")
    assert real.status_code == 201 and "dry_run" not in real.json() and "Idempotent-Replayed" not in real.headers


def test_a_dry_run_of_a_stored_payment_replays_it(cloud: Running) -> None:
    payment_id = ref("pay_")
    stored = cloud_pay(cloud.url, payment_id, 13, 14, "3.00").json()
    before = cloud.ledger()
    shadow = cloud_pay(cloud.url, payment_id, 13, 14, "3.00", shadow=True)
    assert shadow.status_code == 201 and shadow.json() == {**stored, "dry_run": True}
    assert_problem(cloud_pay(cloud.url, payment_id, 13, 14, "4.00", shadow=True), 409, "idempotency-conflict")
    assert cloud.ledger() == before


def test_concurrent_payments_conserve_money(cloud: Running) -> None:
    rng = random.Random(11)
    accounts = (31, 32, 33, 34, 35)
    pairs = [rng.sample(accounts, 2) for _ in range(40)]
    amounts = [f"{rng.randint(1, 20_000) / 100:.2f}" for _ in range(40)]  # 40 x 200.00 < any of these balances
    before = cloud.ledger()

    def pay(i: int) -> requests.Response:
        return cloud_pay(cloud.url, ref("pay_"), pairs[i][0], pairs[i][1], amounts[i], timeout=30)

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(pay, range(40)))
    assert [r.status_code for r in results] == [201] * 40
    after = cloud.ledger()
    assert after["total_balance"] == before["total_balance"] and after["ledger_sum"] == "0.00"
    assert after["unbalanced_payments"] == 0 and after["max_postings_per_payment_id"] == 1
    assert after["posted_payments"] == before["posted_payments"] + 40


def test_profile_patch_updates_and_normalises_the_email(cloud: Running) -> None:
    seeded = customer(22)
    patch = {"email": "  New.Address@Example.COM ", "address": {"city": "Zwolle"}}
    response = requests.patch(cloud.url + "/v1/customers/22/profile", json=patch, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["customer_id"] == "22" and body["name"] == seeded.name and body["phone"] == seeded.phone
    assert body["email"] == "new.address@example.com"
    assert body["address"] == {"line1": seeded.address_line1, "city": "Zwolle", "postcode": seeded.postcode}
    assert ISO_UTC.fullmatch(body["updated_at"])
    assert requests.get(cloud.url + "/v1/customers/22/profile", timeout=10).json() == body


@pytest.mark.parametrize(
    "patch",
    [{}, {"email": "not-an-email"}, {"name": "New Name"}, {"address": {"street": "x"}}, {"phone": 5}, []],
)
def test_invalid_profile_patches_are_400_problems(cloud: Running, patch: object) -> None:
    assert_problem(
        requests.patch(cloud.url + "/v1/customers/23/profile", json=patch, timeout=10), 400, "validation-error"
    )


def test_profile_patch_of_an_unknown_customer_is_a_404_problem(cloud: Running) -> None:
    response = requests.patch(cloud.url + "/v1/customers/99999/profile", json={"phone": "1"}, timeout=10)
    assert_problem(response, 404, "customer-not-found")


def test_an_email_too_long_for_legacy_is_accepted_by_cloud(cloud: Running) -> None:
    email = "a" * 70 + "@example.com"
    response = requests.patch(cloud.url + "/v1/customers/24/profile", json={"email": email}, timeout=10)
    assert response.status_code == 200 and response.json()["email"] == email


def test_unknown_routes_and_methods_are_problems_too(cloud: Running) -> None:
    assert_problem(requests.get(cloud.url + "/v1/loans/1", timeout=10), 404, "not-found")
    assert_problem(requests.delete(cloud.url + "/v1/payments/x", timeout=10), 405, "method-not-allowed")


def test_faults_on_the_cloud_answer_problems_without_doing_anything(cloud_faults: Running) -> None:
    before = cloud_faults.ledger()
    cloud_faults.set_faults(error_rate=1.0)
    payment_id = ref("pay_")
    assert_problem(cloud_pay(cloud_faults.url, payment_id, 1, 2, "1.00"), 503, "service-unavailable")
    assert requests.get(cloud_faults.url + "/healthz", timeout=10).status_code == 200
    cloud_faults.reset_faults()
    assert cloud_faults.ledger() == before
    assert_problem(requests.get(f"{cloud_faults.url}/v1/payments/{payment_id}", timeout=10), 404, "payment-not-found")
