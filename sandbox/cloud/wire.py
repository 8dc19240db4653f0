"""The cloud portal API's message format: RFC 9457 problems, request parsing and record layouts; pure, no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

PROBLEM_BASE = "https://sandbox.strangler.example/problems/"
MAX_ID_LEN = 64
MAX_DESCRIPTION_LEN = 140
MAX_EMAIL_LEN = 254  # RFC 5321 path limit; the legacy record holds only 60
# Profile field -> (column, width); nested `address` members are flattened to their columns.
PROFILE_COLUMNS = {
    "email": ("email", MAX_EMAIL_LEN),
    "phone": ("phone", 32),
    "line1": ("address_line1", 100),
    "city": ("city", 60),
    "postcode": ("postcode", 16),
}

# A stored row by column name: a SQLAlchemy RowMapping or a plain dict.
Row = Mapping[Any, Any]

_ID = re.compile(r"[0-9]{1,18}")
_AMOUNT = re.compile(r"[0-9]{1,16}(\.[0-9]{1,2})?")
_CURRENCY = re.compile(r"[A-Z]{3}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class Problem(Exception):
    """An RFC 9457 problem: raised anywhere, rendered as `application/problem+json` with `status`."""

    def __init__(self, status: int, slug: str, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }


def invalid(detail: str) -> Problem:
    """Return the 400 problem for a request that fails validation."""
    return Problem(400, "validation-error", "Invalid request", detail)


def money(value: Decimal) -> str:
    """Return an amount as a decimal string with exactly two decimals."""
    return f"{value:.2f}"


def iso_utc(instant: datetime) -> str:
    """Return an aware instant as ISO-8601 UTC with millisecond precision and a `Z` suffix."""
    return instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def resource_id(value: str, kind: str) -> int:
    """Return the numeric id in a path segment, or raise the 404 problem for `kind` (no such resource)."""
    if not _ID.fullmatch(value):
        raise Problem(404, f"{kind}-not-found", f"{kind.capitalize()} not found", f"no {kind} {value!r}")
    return int(value)


def _body_id(body: Mapping[str, Any], field: str) -> int:
    value = body.get(field)
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise invalid(f"{field} must be an account id: a string of 1-18 digits")
    return int(value)


@dataclass(frozen=True)
class PaymentInstruction:
    """A valid payment request."""

    payment_id: str
    from_account: int
    to_account: int
    amount: Decimal
    currency: str
    description: str

    def same_details(self, row: Row) -> bool:
        """Return whether a stored payment row carries this instruction's accounts, amount and currency."""
        return (row["from_account"], row["to_account"], row["amount"], row["currency"]) == (
            self.from_account,
            self.to_account,
            self.amount,
            self.currency,
        )


def parse_payment(body: object) -> PaymentInstruction:
    """Return the payment instruction in `body`, or raise the 400 problem naming the first invalid member."""
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object")
    payment_id = body.get("payment_id")
    if not isinstance(payment_id, str) or not 0 < len(payment_id) <= MAX_ID_LEN or not payment_id.isprintable():
        raise invalid(f"payment_id must be a string of 1-{MAX_ID_LEN} printable characters")
    from_account = _body_id(body, "from_account")
    to_account = _body_id(body, "to_account")
    if from_account == to_account:
        raise invalid("from_account and to_account must differ")
    amount = body.get("amount")
    if not isinstance(amount, str) or not _AMOUNT.fullmatch(amount) or Decimal(amount) <= 0:
        raise invalid('amount must be a positive decimal string with at most 2 decimals, e.g. "10.00"')
    currency = body.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise invalid('currency must be an ISO 4217 code, e.g. "EUR"')
    description = body.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_LEN:
        raise invalid(f"description must be a string of at most {MAX_DESCRIPTION_LEN} characters")
    # Statement lines are rendered from it: surrounding whitespace goes and inner runs become one space.
    description = " ".join(description.split())
    return PaymentInstruction(
        payment_id=payment_id,
        from_account=from_account,
        to_account=to_account,
        amount=Decimal(amount),
        currency=currency,
        description=description,
    )


def parse_profile_patch(body: object) -> dict[str, str]:
    """Return the column -> new value changes in a profile PATCH body, or raise the 400 problem."""
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object")
    unknown = sorted(set(body) - {"email", "phone", "address"})
    if unknown:
        raise invalid(f"unknown member(s): {', '.join(unknown)}")
    fields = {key: body[key] for key in ("email", "phone") if key in body}
    if "address" in body:
        address = body["address"]
        if not isinstance(address, dict) or set(address) - {"line1", "city", "postcode"}:
            raise invalid("address must be an object with any of line1, city, postcode")
        fields.update(address)
    changes: dict[str, str] = {}
    for name, value in fields.items():
        column, width = PROFILE_COLUMNS[name]
        if not isinstance(value, str) or len(value) > width:
            raise invalid(f"{name} must be a string of at most {width} characters")
        changes[column] = value
    if "email" in changes:
        # Addresses are compared case-insensitively by every mail system we deliver to: store one spelling.
        changes["email"] = changes["email"].strip().lower()
        if not _EMAIL.fullmatch(changes["email"]):
            raise invalid("email must be an address like name@example.com")
    if not changes:
        raise invalid("nothing to update: give email, phone or address")
    return changes


def payment_record(row: Row) -> dict[str, Any]:
    """Return the API layout of a stored payment row."""
    record: dict[str, Any] = {
        "payment_id": row["payment_id"],
        "status": row["status"],
        "from_account": str(row["from_account"]),
        "to_account": str(row["to_account"]),
        "amount": money(row["amount"]),
        "currency": row["currency"],
        "posted_at": iso_utc(row["created_at"]) if row["status"] == "posted" else None,
        "description": row["description"],
    }
    if row["status"] != "posted":
        record["reason"] = row["reason"]
    return record


def legacy_payment_record(row: Row) -> dict[str, Any]:
    """Return the API layout of a payment replicated from legacy (cloud.legacy_payments; its time taken as UTC)."""
    posted = row["status"] == "posted"
    record: dict[str, Any] = {
        "payment_id": row["reference"],
        "status": row["status"],
        "from_account": str(row["from_account"]),
        "to_account": str(row["to_account"]),
        "amount": money(row["amount"]),
        "currency": row["currency"],
        "posted_at": iso_utc(datetime.combine(row["posted_on"], row["posted_time"], UTC)) if posted else None,
        "description": row["description"] or "",
    }
    if not posted:
        record["reason"] = "insufficient_funds" if row["return_code"] == "51" else "rejected"
    return record


def profile_record(row: Row) -> dict[str, Any]:
    """Return the API layout of a stored customer row."""
    return {
        "customer_id": str(row["id"]),
        "name": row["name"],
        "email": row["email"],
        "phone": row["phone"],
        "address": {"line1": row["address_line1"], "city": row["city"], "postcode": row["postcode"]},
        "updated_at": iso_utc(row["updated_at"]),
    }
