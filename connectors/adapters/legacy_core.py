"""Adapters for the legacy core's API: upper-case fields, cents, zero-padded ids, YYYYMMDD dates, return codes in RC."""

from __future__ import annotations

import re
from typing import Any

from connectors.adapters.base import Adapter, AdapterInputError, LookupUnknown
from connectors.adapters.money import from_cents, from_legacy_date, from_legacy_id, to_cents, to_legacy_id
from connectors.upstream import UpstreamRequest, UpstreamResponse
from core.calls import Call, Outcome
from core.problems import problem

CURRENCY = re.compile(r"^[A-Z]{3}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
PROFILE_FIELDS = {"email", "phone", "address"}
ADDRESS_FIELDS = {"line1": "ADDR1", "city": "CITY", "postcode": "POSTCD"}


def _legacy_json(response: UpstreamResponse) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _upstream_failure(response: UpstreamResponse, body: dict[str, Any] | None) -> Outcome:
    """Map a legacy answer we cannot use to a problem the portal understands, never leaking legacy internals."""
    if response.status == 503:
        return problem(503, "upstream-unavailable", "Core system unavailable", headers={"Retry-After": "1"})
    rc = body.get("RC") if body else None
    return problem(502, "upstream-error", "Core system error", f"legacy answered HTTP {response.status} RC {rc}")


def _body_object(call: Call) -> dict[str, Any]:
    body = call.json
    if not isinstance(body, dict):
        raise AdapterInputError("the body must be a JSON object")
    return body


def _payment(record: dict[str, Any]) -> dict[str, Any]:
    posted = record.get("STAT") == "PSTD"
    payment = {
        "payment_id": record["REFNO"],
        "status": "posted" if posted else "rejected",
        "from_account": from_legacy_id(record["DRACCT"]),
        "to_account": from_legacy_id(record["CRACCT"]),
        "amount": from_cents(int(record["AMTCENTS"])),
        "currency": record["CCY"],
        "description": record.get("NARR") or "",
        # A rejected payment was never posted: legacy stamps it anyway, the portal says null (as the cloud does).
        "posted_at": from_legacy_date(record["POSTDT"], record.get("POSTTM")) if posted else None,
    }
    if not posted:
        payment["reason"] = "insufficient_funds" if record.get("RC") == "51" else "rejected"
    return payment


def _rejected(payment: dict[str, Any]) -> Outcome:
    return problem(
        422, "insufficient-funds", "Insufficient funds", "the debit account cannot cover this payment",
        payment_id=payment["payment_id"], payment=payment,
    )  # fmt: skip


class LegacyBalance(Adapter):
    """GET /v1/accounts/{account_id}/balance ⇄ GET /CBS/ACCT/BAL?ACCTNO=…"""

    def request(self, call: Call) -> UpstreamRequest:
        acct = to_legacy_id(call.path_params["account_id"], "account_id")
        return UpstreamRequest("GET", "/CBS/ACCT/BAL", params={"ACCTNO": acct}, safe_to_repeat=True)

    def outcome(self, call: Call, response: UpstreamResponse) -> Outcome:
        body = _legacy_json(response)
        if response.status != 200 or body is None:
            return _upstream_failure(response, body)
        if body.get("RC") == "14":
            return problem(
                404, "account-not-found", "Account not found", f"no account {call.path_params['account_id']}"
            )
        if body.get("RC") != "00":
            return _upstream_failure(response, body)
        return Outcome(
            200,
            {
                "account_id": from_legacy_id(body["ACCTNO"]),
                "currency": body["CCY"],
                "balance": from_cents(int(body["CURBAL"])),
                "available": from_cents(int(body["AVLBAL"])),
                "as_of": from_legacy_date(body["ASOFDT"]),
            },
        )


class LegacyPaymentCreate(Adapter):
    """POST /v1/payments ⇄ POST /CBS/PAYMT, with the facade's payment id as legacy's REFNO."""

    def request(self, call: Call) -> UpstreamRequest:
        body = _body_object(call)
        unknown = set(body) - {"from_account", "to_account", "amount", "currency", "description"}
        if unknown:
            raise AdapterInputError(f"unknown fields: {', '.join(sorted(unknown))}")
        currency = body.get("currency")
        if not isinstance(currency, str) or not CURRENCY.match(currency):
            raise AdapterInputError("currency must be a three-letter ISO code such as EUR", "currency")
        description = body.get("description", "")
        if not isinstance(description, str) or len(description) > 140:
            raise AdapterInputError("description must be text of at most 140 characters", "description")
        if call.resource_id is None:
            raise AdapterInputError("payment id missing")  # the facade always names creates; defensive
        payload = {
            "REFNO": call.resource_id,
            "DRACCT": to_legacy_id(body.get("from_account"), "from_account"),
            "CRACCT": to_legacy_id(body.get("to_account"), "to_account"),
            "AMTCENTS": to_cents(body.get("amount")),
            "CCY": currency,
            "NARR": description,
        }
        if payload["DRACCT"] == payload["CRACCT"]:
            raise AdapterInputError("from_account and to_account must differ", "to_account")
        return UpstreamRequest("POST", "/CBS/PAYMT", json=payload)

    def outcome(self, call: Call, response: UpstreamResponse) -> Outcome:
        body = _legacy_json(response)
        if response.status != 200 or body is None:
            return _upstream_failure(response, body)
        rc = body.get("RC")
        if rc == "00":
            return Outcome(201, _payment(body), headers={"Location": f"/v1/payments/{body['REFNO']}"})
        if rc == "51":
            return _rejected(_payment(body))
        if rc == "14":
            return problem(404, "account-not-found", "Account not found", "one of the accounts does not exist")
        if rc == "12":
            return problem(422, "invalid-transaction", "Invalid transaction", body.get("RCDESC", ""))
        if rc == "13":
            return problem(400, "invalid-amount", "Invalid amount", body.get("RCDESC", ""))
        return _upstream_failure(response, body)

    def lookup(self, call: Call) -> UpstreamRequest | None:
        if call.resource_id is None:
            return None
        return UpstreamRequest("GET", "/CBS/PAYMT/INQ", params={"REFNO": call.resource_id}, safe_to_repeat=True)

    def lookup_outcome(self, call: Call, response: UpstreamResponse) -> Outcome | None:
        body = _legacy_json(response)
        if response.status == 200 and body is not None and body.get("RC") == "25":
            return None
        if response.status != 200 or body is None or body.get("RC") not in ("00", "51"):
            raise LookupUnknown(f"legacy inquiry answered HTTP {response.status}")
        # An inquiry returns the stored record with the RC it was decided with.
        payment = _payment(body)
        if payment["status"] == "posted":
            return Outcome(201, payment, headers={"Location": f"/v1/payments/{payment['payment_id']}"})
        return _rejected(payment)


class LegacyPaymentGet(Adapter):
    """GET /v1/payments/{payment_id} ⇄ GET /CBS/PAYMT/INQ?REFNO=…"""

    def request(self, call: Call) -> UpstreamRequest:
        ref = call.path_params["payment_id"]
        if not 1 <= len(ref) <= 64:
            raise AdapterInputError("payment_id is malformed", "payment_id")
        return UpstreamRequest("GET", "/CBS/PAYMT/INQ", params={"REFNO": ref}, safe_to_repeat=True)

    def outcome(self, call: Call, response: UpstreamResponse) -> Outcome:
        body = _legacy_json(response)
        if response.status != 200 or body is None:
            return _upstream_failure(response, body)
        if body.get("RC") == "25":
            return problem(
                404, "payment-not-found", "Payment not found", f"no payment {call.path_params['payment_id']}"
            )
        if "STAT" not in body or "REFNO" not in body:
            return _upstream_failure(response, body)
        return Outcome(200, _payment(body))


class LegacyProfileUpdate(Adapter):
    """PATCH /v1/customers/{customer_id}/profile ⇄ POST /CBS/CUST/PROFUPD."""

    def request(self, call: Call) -> UpstreamRequest:
        body = _body_object(call)
        if not body:
            raise AdapterInputError("nothing to update: give email, phone or address")
        unknown = set(body) - PROFILE_FIELDS
        if unknown:
            raise AdapterInputError(f"unknown fields: {', '.join(sorted(unknown))}")
        payload: dict[str, Any] = {"CUSTNO": to_legacy_id(call.path_params["customer_id"], "customer_id")}
        if "email" in body:
            if not isinstance(body["email"], str) or len(body["email"]) > 60 or not EMAIL.match(body["email"]):
                raise AdapterInputError("email must be an address of at most 60 characters", "email")
            payload["EMAIL"] = body["email"]
        if "phone" in body:
            if not isinstance(body["phone"], str) or not 3 <= len(body["phone"]) <= 20:
                raise AdapterInputError("phone must be text of 3 to 20 characters", "phone")
            payload["PHONE"] = body["phone"]
        if "address" in body:
            address = body["address"]
            if not isinstance(address, dict) or not address or set(address) - set(ADDRESS_FIELDS):
                raise AdapterInputError("address takes line1, city and postcode", "address")
            for key, legacy_key in ADDRESS_FIELDS.items():
                if key in address:
                    if not isinstance(address[key], str) or len(address[key]) > 80:
                        raise AdapterInputError(f"address.{key} must be text of at most 80 characters", "address")
                    payload[legacy_key] = address[key]
        if call.resource_id:
            payload["UPDREF"] = call.resource_id
        return UpstreamRequest("POST", "/CBS/CUST/PROFUPD", json=payload)

    def outcome(self, call: Call, response: UpstreamResponse) -> Outcome:
        body = _legacy_json(response)
        if body is not None and body.get("RC") == "14":
            return problem(404, "customer-not-found", "Customer not found")
        if response.status == 400 and body is not None and body.get("RC") == "30":
            return problem(400, "invalid-request", "Invalid profile", body.get("RCDESC", ""))
        if response.status != 200 or body is None or body.get("RC") != "00":
            return _upstream_failure(response, body)
        return Outcome(
            200,
            {
                "customer_id": from_legacy_id(body["CUSTNO"]),
                "name": body.get("NAME"),
                "email": body.get("EMAIL"),
                "phone": body.get("PHONE"),
                "address": {"line1": body.get("ADDR1"), "city": body.get("CITY"), "postcode": body.get("POSTCD")},
                "updated_at": from_legacy_date(body["LSTUPDDT"]),
            },
        )
