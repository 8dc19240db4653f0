"""The legacy message format: return codes, request parsing and record layouts; pure, no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

RC_OK = "00"
RC_INVALID_TRANSACTION = "12"
RC_INVALID_AMOUNT = "13"
RC_NO_SUCH_ACCOUNT = "14"
RC_RECORD_NOT_FOUND = "25"
RC_FORMAT_ERROR = "30"
RC_INSUFFICIENT_FUNDS = "51"
RC_TIMEOUT = "91"
RC_DUPLICATE_REFERENCE = "94"
RC_SYSTEM_MALFUNCTION = "96"

RCDESC = {
    RC_INVALID_TRANSACTION: "INVALID TRANSACTION",
    RC_INVALID_AMOUNT: "INVALID AMOUNT",
    RC_NO_SUCH_ACCOUNT: "NO SUCH ACCOUNT",
    RC_RECORD_NOT_FOUND: "RECORD NOT FOUND",
    RC_FORMAT_ERROR: "FORMAT ERROR",
    RC_INSUFFICIENT_FUNDS: "INSUFFICIENT FUNDS",
    RC_TIMEOUT: "TIMEOUT",
    RC_DUPLICATE_REFERENCE: "DUPLICATE REFERENCE",
    RC_SYSTEM_MALFUNCTION: "SYSTEM MALFUNCTION",
}

MAX_AMTCENTS = 9_999_999_999_999  # PIC 9(13): the legacy amount field holds 13 digits
MAX_REF_LEN = 64
MAX_NARR_LEN = 140
# Updatable profile fields and their record widths, in the order the record lists them.
PROFILE_FIELDS = {"EMAIL": 60, "PHONE": 20, "ADDR1": 60, "CITY": 40, "POSTCD": 10}

# A stored row by column name: a SQLAlchemy RowMapping or a plain dict.
Row = Mapping[Any, Any]

_NUMBER = re.compile(r"[0-9]{10}")
_CCY = re.compile(r"[A-Z]{3}")


class FormatError(Exception):
    """A malformed request: answered HTTP 400 with RC 30 and the reason in RCDESC."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def body(self) -> dict[str, str]:
        return {"RC": RC_FORMAT_ERROR, "RCDESC": f"FORMAT ERROR {self.detail}"}


class Refusal(Exception):
    """A business refusal that records nothing: answered HTTP 200 with its return code."""

    def __init__(self, rc: str, desc: str | None = None) -> None:
        super().__init__(rc)
        self.rc = rc
        self.desc = desc or RCDESC[rc]

    def body(self) -> dict[str, str]:
        return {"RC": self.rc, "RCDESC": self.desc}


def refusal_body(rc: str, desc: str | None = None) -> dict[str, str]:
    """Return the `{"RC", "RCDESC"}` body of a refusal with return code `rc`."""
    return Refusal(rc, desc).body()


def number10(value: object, field: str) -> str:
    """Return `value` if it is exactly ten digits (the legacy account/customer number), else raise FormatError."""
    if not isinstance(value, str) or not _NUMBER.fullmatch(value):
        raise FormatError(f"{field} MUST BE 10 DIGITS")
    return value


def _text(body: Mapping[str, Any], field: str, max_len: int, required: bool) -> str | None:
    if field not in body:
        if required:
            raise FormatError(f"{field} MISSING")
        return None
    value = body[field]
    if not isinstance(value, str):
        raise FormatError(f"{field} MUST BE TEXT")
    if len(value) > max_len:
        raise FormatError(f"{field} LONGER THAN {max_len}")
    return value


@dataclass(frozen=True)
class PaymentOrder:
    """A well-formed payment request."""

    refno: str
    dracct: str
    cracct: str
    amtcents: int
    ccy: str
    narr: str

    def same_details(self, record: Row) -> bool:
        """Return whether a stored payment record carries this order's accounts, amount and currency."""
        return (record["DRACCT"], record["CRACCT"], record["AMTCENTS"], record["CCY"]) == (
            self.dracct,
            self.cracct,
            self.amtcents,
            self.ccy,
        )


def parse_payment(body: object) -> PaymentOrder:
    """Return the payment order in `body`, or raise FormatError (RC 30) or Refusal (RC 13, 12)."""
    if not isinstance(body, dict):
        raise FormatError("BODY MUST BE A JSON OBJECT")
    refno = _text(body, "REFNO", MAX_REF_LEN, required=True)
    if not refno or not refno.isprintable():
        raise FormatError("REFNO MUST BE 1-64 PRINTABLE CHARACTERS")
    dracct = number10(body.get("DRACCT"), "DRACCT")
    cracct = number10(body.get("CRACCT"), "CRACCT")
    ccy = body.get("CCY")
    if not isinstance(ccy, str) or not _CCY.fullmatch(ccy):
        raise FormatError("CCY MUST BE 3 UPPER-CASE LETTERS")
    narr = _text(body, "NARR", MAX_NARR_LEN, required=False) or ""
    if "AMTCENTS" not in body:
        raise FormatError("AMTCENTS MISSING")
    amount = body["AMTCENTS"]
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_AMTCENTS:
        raise Refusal(RC_INVALID_AMOUNT)
    if dracct == cracct:
        raise Refusal(RC_INVALID_TRANSACTION)
    return PaymentOrder(refno=refno, dracct=dracct, cracct=cracct, amtcents=amount, ccy=ccy, narr=narr)


@dataclass(frozen=True)
class ProfileUpdate:
    """A well-formed profile update: the record fields to change and the caller's optional reference."""

    custno: str
    changes: dict[str, str]
    updref: str | None


def parse_profile_update(body: object) -> ProfileUpdate:
    """Return the profile update in `body`, or raise FormatError (RC 30) for a malformed or over-long field."""
    if not isinstance(body, dict):
        raise FormatError("BODY MUST BE A JSON OBJECT")
    custno = number10(body.get("CUSTNO"), "CUSTNO")
    changes: dict[str, str] = {}
    for field, width in PROFILE_FIELDS.items():
        value = _text(body, field, width, required=False)
        if value is not None:
            changes[field] = value
    if not changes:
        raise FormatError("NO PROFILE FIELD TO UPDATE")
    updref = _text(body, "UPDREF", MAX_REF_LEN, required=False)
    if updref is not None and (not updref or not updref.isprintable()):
        raise FormatError("UPDREF MUST BE 1-64 PRINTABLE CHARACTERS")
    return ProfileUpdate(custno=custno, changes=changes, updref=updref)


def stamp(now: datetime) -> tuple[str, str]:
    """Return the legacy date and time fields (`YYYYMMDD`, `HHMMSS`) for a local wall-clock instant."""
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S")


def payment_record(row: Row) -> dict[str, Any]:
    """Return the API layout of a stored payment row (keys as in the PAYMENTS table, lower-case)."""
    record: dict[str, Any] = {"RC": row["rc"]}
    if row["rc"] != RC_OK:
        record["RCDESC"] = RCDESC.get(row["rc"], "")
    record.update(
        PAYID=row["payid"],
        REFNO=row["refno"],
        STAT=row["stat"],
        DRACCT=row["dracct"],
        CRACCT=row["cracct"],
        AMTCENTS=row["amtcents"],
        CCY=row["ccy"],
        POSTDT=row["postdt"],
        POSTTM=row["posttm"],
        NARR=row["narr"],
    )
    return record


def customer_record(row: Row) -> dict[str, Any]:
    """Return the API layout of a stored customer row (keys as in the CUSTMAST table, lower-case)."""
    return {
        "RC": RC_OK,
        "CUSTNO": row["custno"],
        "NAME": row["name"],
        "EMAIL": row["email"],
        "PHONE": row["phone"],
        "ADDR1": row["addr1"],
        "CITY": row["city"],
        "POSTCD": row["postcd"],
        "LSTUPDDT": row["lstupddt"],
    }
