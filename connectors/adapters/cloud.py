"""Adapters for the cloud service: it speaks the portal API already, so only facade-named fields are added."""

from __future__ import annotations

import json

from connectors.adapters.base import AdapterInputError, LookupUnknown, Passthrough
from connectors.upstream import UpstreamRequest, UpstreamResponse
from core.calls import Call, Outcome


class CloudPaymentCreate(Passthrough):
    """POST /v1/payments passed through with the facade's payment id, so legacy and cloud share one reference."""

    def request(self, call: Call) -> UpstreamRequest:
        body = call.json
        if not isinstance(body, dict):
            raise AdapterInputError("the body must be a JSON object")
        payload = {**body, "payment_id": call.resource_id}
        return UpstreamRequest("POST", call.path, json=payload)

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
