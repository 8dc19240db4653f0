"""PII masking: by field name and by value pattern, with a useful hint and the evidence left readable."""

from __future__ import annotations

import json

import pytest

from parallel_run.mask import mask_json, mask_text, mask_value


@pytest.mark.parametrize(
    ("path", "value", "shown"),
    [
        ("$.email", "john@example.com", "j***@e***.com"),
        ("$.customer.contactEmail", "Ann.Lee@mail.bank.co.uk", "A***@m***.uk"),
        ("$.email", "not-an-address", "n***"),
        ("$.iban", "DE89370400440532013000", "DE89********3000"),
        ("$.debtor_iban", "GB82 WEST 1234 5698 7654 32", "GB82********5432"),
        ("$.card_number", "4111 1111 1111 1111", "****1111"),
        ("$.pan", "5555555555554444", "****4444"),
        ("$.phone", "+44 7700 900189", "+44******89"),
        ("$.mobile", "07700 900189", "07******89"),
        ("$.name", "John Smith", "J*** S***"),
        ("$.account_holder", "Jo", "J***"),
        ("$.lastName", "Lee", "L***"),
        ("$.address.line1", "10 Downing Street", "1*** D*** S***"),
        ("$.postcode", "SW1A 2AA", "SW***"),
        ("$.date_of_birth", "1980-02-03", "1***"),
        ("$.cvv", "123", "***"),
        ("$.contacts[*].email", "x@y.org", "x***@y***.org"),  # a generalised path names its field too
        ("$.emails[3]", "x@y.org", "x***@y***.org"),
        ("$.owner_email", "x@y.org", "x***@y***.org"),  # the last word says what it holds
        ("$.cardholder", "Ann Lee", "A*** L***"),
        ("$.e-mail", "x@y.org", "x***@y***.org"),
    ],
)
def test_fields_named_as_personal_are_masked_with_a_hint(path: str, value: str, shown: str) -> None:
    assert mask_value(path, value) == json.dumps(shown)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("$.amount", "1234567890123456"),  # an amount is evidence even when it looks like a card
        ("$.balance", 4111111111111111),
        ("$.account_id", "4111111111111111"),  # ids stay readable
        ("$.payment_id", "+44 7700 900189"),
        ("$.reference", "07700900189"),
        ("$.status", "settled"),
        ("$.currency", "EUR"),
        ("$.name_type", "legal"),  # the last word says what it is: a kind, not a name
        ("$.card_id", "crd_19"),
        ("$.lsn", "0/16B3748"),
        ("$.created_at", "2024-01-02T10:00:00+01:00"),
        ("$.count", 41111111111111111),
        ("$.note", "4111111111111112"),  # not Luhn-valid: not a card number
        ("$.ref", "PY20240102000123"),  # IBAN-shaped, but PY has no IBANs
        ("$.items[*].amount", 10.5),
        ("status", 503),
    ],
)
def test_evidence_stays_readable(path: str, value: object) -> None:
    assert mask_value(path, value) == json.dumps(value)


def test_values_anywhere_are_masked_by_pattern() -> None:
    text = (
        "from ann.lee@example.com card 4111-1111-1111-1111 to DE89 3704 0044 0532 0130 00, "
        "call +1 (555) 123-4567 or 020 7946 0018; on 2024-01-02T10:00:00Z ref 12:30"
    )
    masked = mask_text(text)
    assert masked == (
        "from a***@e***.com card ****1111 to DE89********3000, "
        "call +15******67 or 02******18; on 2024-01-02T10:00:00Z ref 12:30"
    )


def test_an_iban_followed_by_more_text_is_still_masked() -> None:
    assert mask_text("DE89370400440532013000 EXTRA") == "DE89********3000 EXTRA"
    assert mask_text("DE8937040044053201300") == "DE8937040044053201300"  # one short: not an IBAN of DE


def test_numbers_are_masked_only_by_field_name() -> None:
    assert mask_value("$.phone", 447700900189) == '"44******89"'
    assert mask_value("$.total", 447700900189) == "447700900189"


def test_structures_are_masked_member_by_member() -> None:
    doc = {
        "payment_id": "pay_1", "amount": "10.00", "status": "booked",
        "debtor": {"name": "Ann Lee", "iban": "NL91ABNA0417164300", "email": "ann@x.nl"},
        "notes": ["mail ann@x.nl", None, True, 3],
    }  # fmt: skip
    assert mask_json("$", doc) == {
        "payment_id": "pay_1", "amount": "10.00", "status": "booked",
        "debtor": {"name": "A*** L***", "iban": "NL91********4300", "email": "a***@x***.nl"},
        "notes": ["mail a***@x***.nl", None, True, 3],
    }  # fmt: skip


def test_masking_keeps_json_null_and_non_json_values_printable() -> None:
    from decimal import Decimal

    assert mask_value("$.email", None) == "null"
    assert mask_value("$.amount", Decimal("1.50")) == '"1.50"'


def test_a_path_that_is_not_json_still_gets_value_patterns() -> None:
    assert mask_value("body text", "mail me: a@b.com") == json.dumps("mail me: a***@b***.com")
