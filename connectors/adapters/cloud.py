"""Adapters for the cloud service: it speaks the portal API already, so only facade-named fields are added."""

from __future__ import annotations

import json
from typing import Any

from connectors.adapters.base import AdapterInputError, LookupUnknown, Passthrough
from connectors.adapters.money import from_cents, to_cents
from connectors.upstream import UpstreamRequest, UpstreamResponse
from core.calls import Call, Outcome
from core.problems import problem


class CloudPaymentCreate(Passthrough):
    """POST /v1/payments passed through with the facade's payment id, so legacy and cloud share one reference."""

    def request(self, call: Call) -> UpstreamRequest:
        body = call.json
        if not isinstance(body, dict):
            raise AdapterInputError("the body must be a JSON object")
        payload = {**body, "payment_id": call.resource_id}
        return UpstreamRequest("POST", call.path, json=payload)

    def outcome(self, call: Call, response: UpstreamResponse) -> Outcome:
        """The cloud's answer, except a payment refused for funds: that gets the portal's shape, as from legacy."""
        if response.status != 422:
            return super().outcome(call, response)
        try:
            body = json.loads(response.body)
        except ValueError:
            return super().outcome(call, response)
        if not (isinstance(body, dict) and body.get("reason") == "insufficient_funds"):
            return super().outcome(call, response)
        return rejected_payment(call, body)

    def lookup(self, call: Call) -> UpstreamRequest | None:
        return UpstreamRequest("GET", f"/v1/payments/{call.resource_id}", safe_to_repeat=True)

    def lookup_outcome(self, call: Call, response: UpstreamResponse) -> Outcome | None:
        if response.status == 404:
            return None
        if response.status != 200:
            raise LookupUnknown(f"cloud answered HTTP {response.status}")
        body = json.loads(response.body)
        status = 201 if body.get("status") == "posted" else 422
        return Outcome(status, body, headers={"Location": f"/v1/payments/{call.resource_id}"})


def rejected_payment(call: Call, problem_body: dict[str, Any]) -> Outcome:
    """The portal's problem for a payment refused for funds, built from the cloud's problem and the request."""
    request = call.json if isinstance(call.json, dict) else {}
    payment = {
        "payment_id": call.resource_id,
        "status": "rejected",
        "from_account": str(request.get("from_account", "")),
        "to_account": str(request.get("to_account", "")),
        "amount": _amount(request.get("amount")),
        "currency": request.get("currency"),
        "description": request.get("description") or "",
        "posted_at": None,
        "reason": "insufficient_funds",
    }
    outcome = problem(
        422, "insufficient-funds", "Insufficient funds", "the debit account cannot cover this payment",
        payment_id=call.resource_id, payment=payment,
    )  # fmt: skip
    if problem_body.get("dry_run"):
        outcome.body["dry_run"] = True  # the shadow's marker stays visible to the comparator
    return outcome


def _amount(value: object) -> object:
    try:
        return from_cents(to_cents(value))
    except AdapterInputError:
        return value  # the cloud judged it; show what was asked rather than guess
