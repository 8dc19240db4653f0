"""Small request builders shared by the sandbox tests."""

from __future__ import annotations

import uuid
from typing import Any

import requests


def ref(prefix: str = "T") -> str:
    """Return a reference no other test uses."""
    return f"{prefix}{uuid.uuid4().hex[:20]}"


def acct(number: int) -> str:
    """Return the legacy ten-digit form of an account or customer number."""
    return f"{number:010d}"


def legacy_pay(
    base: str,
    refno: str,
    dr: int,
    cr: int,
    cents: Any,
    ccy: str = "EUR",
    narr: str = "test",
    timeout: float = 10,
) -> requests.Response:
    """POST one payment to the legacy API."""
    body = {"REFNO": refno, "DRACCT": acct(dr), "CRACCT": acct(cr), "AMTCENTS": cents, "CCY": ccy, "NARR": narr}
    return requests.post(base + "/CBS/PAYMT", json=body, timeout=timeout)


def legacy_balance(base: str, number: int) -> int:
    """Return the current legacy balance of account `number` in cents."""
    body = requests.get(base + "/CBS/ACCT/BAL", params={"ACCTNO": acct(number)}, timeout=10).json()
    assert body["RC"] == "00", body
    return int(body["CURBAL"])


def legacy_inquiry(base: str, refno: str) -> dict[str, Any]:
    """Return the legacy PAYMT/INQ answer for `refno`."""
    response = requests.get(base + "/CBS/PAYMT/INQ", params={"REFNO": refno}, timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def cloud_pay(
    base: str,
    payment_id: str,
    frm: int,
    to: int,
    amount: str,
    currency: str = "EUR",
    shadow: bool = False,
    timeout: float = 10,
) -> requests.Response:
    """POST one payment to the cloud API, as a dry run when `shadow`."""
    body = {
        "payment_id": payment_id,
        "from_account": str(frm),
        "to_account": str(to),
        "amount": amount,
        "currency": currency,
        "description": "test",
    }
    headers = {"X-Strangler-Shadow": "1"} if shadow else {}
    return requests.post(base + "/v1/payments", json=body, headers=headers, timeout=timeout)


def cloud_balance(base: str, number: int) -> str:
    """Return the cloud balance of account `number` as its decimal string."""
    response = requests.get(f"{base}/v1/accounts/{number}/balance", timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["balance"])
