"""Legacy adapters translate both ways and map every legacy return code to a defined portal answer."""

from __future__ import annotations

import pytest

from connectors.adapters import AdapterInputError, LookupUnknown, Passthrough, adapter_registry
from connectors.adapters.money import from_cents, to_cents, to_legacy_id
from tests.builders import call, response

ADAPTERS = adapter_registry()
PAYMENT = {"from_account": "1", "to_account": "2", "amount": "10.50", "currency": "EUR", "description": "rent"}
RECORD = {
    "RC": "00", "PAYID": "P000000000001", "REFNO": "pay_1", "STAT": "PSTD", "DRACCT": "0000000001",
    "CRACCT": "0000000002", "AMTCENTS": 1050, "CCY": "EUR", "POSTDT": "20261121", "POSTTM": "235959", "NARR": "rent",
}  # fmt: skip


def pay_call(body: object = PAYMENT) -> object:
    return call("payments.create", "POST", "/v1/payments", body=body, resource_id="pay_1")


@pytest.mark.parametrize(("text", "cents"), [("10.50", 1050), ("0.01", 1), ("7", 700), ("1000000.00", 100000000)])
def test_amounts_become_cents_exactly(text: str, cents: int) -> None:
    assert to_cents(text) == cents and from_cents(cents) == f"{cents // 100}.{cents % 100:02d}"


@pytest.mark.parametrize("bad", ["0", "-1.00", "1.001", "abc", "NaN", "Infinity", 10.5, None, "1e30"])
def test_bad_amounts_are_refused(bad: object) -> None:
    with pytest.raises(AdapterInputError):
        to_cents(bad)


@pytest.mark.parametrize("bad", ["", "0", "12345678901", "1a", "-1", True, None])
def test_bad_ids_are_refused(bad: object) -> None:
    with pytest.raises(AdapterInputError):
        to_legacy_id(bad, "account_id")


def test_balance_request_and_answer() -> None:
    adapter, c = ADAPTERS["legacy.balance"], call(account_id="42")
    request = adapter.request(c)
    assert (request.method, request.path, request.params, request.safe_to_repeat) == (
        "GET", "/CBS/ACCT/BAL", {"ACCTNO": "0000000042"}, True,
    )  # fmt: skip
    legacy = {"RC": "00", "ACCTNO": "0000000042", "CURBAL": 12345, "AVLBAL": 12000, "CCY": "EUR", "ASOFDT": "20261121"}
    outcome = adapter.outcome(c, response(legacy))
    assert (outcome.status, outcome.body) == (
        200,
        {"account_id": "42", "currency": "EUR", "balance": "123.45", "available": "120.00", "as_of": "2026-11-21"},
    )


def test_balance_of_unknown_account_is_404_and_legacy_errors_are_502_or_503() -> None:
    adapter, c = ADAPTERS["legacy.balance"], call(account_id="42")
    assert adapter.outcome(c, response({"RC": "14", "RCDESC": "NO SUCH ACCOUNT"})).status == 404
    assert adapter.outcome(c, response({"RC": "96"}, status=500)).status == 502
    unavailable = adapter.outcome(c, response({"RC": "96"}, status=503))
    assert unavailable.status == 503 and unavailable.headers["Retry-After"] == "1"
    assert adapter.outcome(c, response({"RC": "77"})).status == 502


def test_payment_request_uses_the_facade_reference_and_legacy_units() -> None:
    request = ADAPTERS["legacy.payment_create"].request(pay_call())
    assert request.json == {
        "REFNO": "pay_1", "DRACCT": "0000000001", "CRACCT": "0000000002", "AMTCENTS": 1050, "CCY": "EUR",
        "NARR": "rent",
    }  # fmt: skip
    assert not request.safe_to_repeat


@pytest.mark.parametrize(
    "body",
    [
        {**PAYMENT, "amount": 10.5},
        {**PAYMENT, "currency": "euro"},
        {**PAYMENT, "to_account": "1"},
        {**PAYMENT, "surprise": True},
        {**PAYMENT, "description": "x" * 141},
        ["not", "an", "object"],
    ],
)
def test_invalid_payments_are_refused_before_anything_is_sent(body: object) -> None:
    with pytest.raises(AdapterInputError):
        ADAPTERS["legacy.payment_create"].request(pay_call(body))


def test_payment_outcomes_by_return_code() -> None:
    adapter, c = ADAPTERS["legacy.payment_create"], pay_call()
    posted = adapter.outcome(c, response({**RECORD, "DUPFLG": "N"}))
    assert posted.status == 201 and posted.body["status"] == "posted" and posted.body["amount"] == "10.50"
    assert posted.body["posted_at"] == "2026-11-21T23:59:59Z" and posted.headers["Location"] == "/v1/payments/pay_1"
    rejected = adapter.outcome(c, response({**RECORD, "STAT": "RJCT", "RC": "51"}))
    assert rejected.status == 422 and rejected.body["payment"]["reason"] == "insufficient_funds"
    assert adapter.outcome(c, response({"RC": "14"})).status == 404
    assert adapter.outcome(c, response({"RC": "12"})).status == 422


def test_payment_lookup_tells_found_from_not_found_from_unknown() -> None:
    adapter, c = ADAPTERS["legacy.payment_create"], pay_call()
    lookup = adapter.lookup(c)
    assert lookup is not None and lookup.params == {"REFNO": "pay_1"} and lookup.safe_to_repeat
    found = adapter.lookup_outcome(c, response(RECORD))
    assert found is not None and found.status == 201
    assert adapter.lookup_outcome(c, response({"RC": "25", "RCDESC": "RECORD NOT FOUND"})) is None
    with pytest.raises(LookupUnknown):
        adapter.lookup_outcome(c, response({"RC": "96"}, status=503))


def test_profile_update_translation() -> None:
    adapter = ADAPTERS["legacy.profile_update"]
    profile = {"email": "a@b.io", "address": {"city": "Oslo"}}
    c = call("profile.update", "PATCH", "/v1/customers/7/profile", body=profile,
             resource_id="pro_1", customer_id="7")  # fmt: skip
    assert adapter.request(c).json == {"CUSTNO": "0000000007", "EMAIL": "a@b.io", "CITY": "Oslo", "UPDREF": "pro_1"}
    legacy = {"RC": "00", "CUSTNO": "0000000007", "NAME": "Ann", "EMAIL": "a@b.io", "PHONE": "1", "ADDR1": "x",
              "CITY": "Oslo", "POSTCD": "0150", "LSTUPDDT": "20261121"}  # fmt: skip
    outcome = adapter.outcome(c, response(legacy))
    assert outcome.body["address"] == {"line1": "x", "city": "Oslo", "postcode": "0150"}
    assert outcome.body["customer_id"] == "7" and outcome.body["updated_at"] == "2026-11-21"


@pytest.mark.parametrize("body", [{}, {"email": "not-an-email"}, {"address": {"planet": "Mars"}}, {"name": "x"}])
def test_invalid_profile_updates_are_refused(body: object) -> None:
    c = call("profile.update", "PATCH", "/v1/customers/7/profile", body=body, customer_id="7")
    with pytest.raises(AdapterInputError):
        ADAPTERS["legacy.profile_update"].request(c)


def test_passthrough_keeps_request_and_answer_unchanged() -> None:
    c = call("x.y", "POST", "/v1/things", body={"a": 1})
    request = Passthrough().request(c)
    assert (request.method, request.path, request.body) == ("POST", "/v1/things", b'{"a": 1}')
    outcome = Passthrough().outcome(c, response({"b": 2}, status=207))
    assert (outcome.status, outcome.payload()) == (207, b'{"b": 2}')


def test_cloud_payment_create_adds_the_facade_reference() -> None:
    request = ADAPTERS["cloud.payment_create"].request(pay_call())
    assert request.json == {**PAYMENT, "payment_id": "pay_1"}


def test_a_payment_refused_for_funds_has_one_portal_shape_from_legacy_and_from_cloud() -> None:
    from connectors.adapters.cloud import CloudPaymentCreate
    from connectors.adapters.legacy_core import LegacyPaymentCreate

    body = {"from_account": "1", "to_account": "2", "amount": "5000", "currency": "EUR", "description": "rent"}
    portal = call("payments.create", "POST", "/v1/payments", body=body, resource_id="pay_9")
    legacy = {"RC": "51", "RCDESC": "INSUFFICIENT FUNDS", "PAYID": "P1", "REFNO": "pay_9", "STAT": "RJCT",
              "DRACCT": "0000000001", "CRACCT": "0000000002", "AMTCENTS": 500000, "CCY": "EUR",
              "POSTDT": "20261121", "POSTTM": "235959", "NARR": "rent", "DUPFLG": "N"}  # fmt: skip
    cloud = {"type": "https://sandbox.strangler.example/problems/insufficient-funds", "title": "Insufficient funds",
             "status": 422, "detail": "account 1 cannot cover 5000.00 EUR", "payment_id": "pay_9",
             "payment_status": "rejected", "reason": "insufficient_funds", "dry_run": True}  # fmt: skip
    from_legacy = LegacyPaymentCreate().outcome(portal, response(legacy))
    from_cloud = CloudPaymentCreate().outcome(portal, response(cloud, 422))
    assert from_legacy.status == from_cloud.status == 422
    assert from_cloud.body.pop("dry_run") is True  # the shadow's marker stays visible to the comparator
    assert from_legacy.body == from_cloud.body
    assert from_cloud.body["payment"]["posted_at"] is None and from_cloud.body["payment"]["amount"] == "5000.00"
