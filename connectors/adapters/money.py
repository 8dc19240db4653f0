"""Amounts and identifiers between the portal (decimal strings, plain ids) and legacy (cents, zero-padded)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from connectors.adapters.base import AdapterInputError

MAX_CENTS = 10**15


def to_cents(amount: object, field: str = "amount") -> int:
    """Parse a portal amount ("10.50") into positive integer cents, refusing floats, fractions of a cent and junk."""
    if not isinstance(amount, str):
        raise AdapterInputError(f'{field} must be a decimal string such as "10.50"', field)
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise AdapterInputError(f"{field} {amount!r} is not a decimal amount", field) from None
    if not value.is_finite() or value <= 0:
        raise AdapterInputError(f"{field} must be greater than zero", field)
    if value.as_tuple().exponent < -2:  # type: ignore[operator]
        raise AdapterInputError(f"{field} has more than two decimal places", field)
    cents = int(value * 100)
    if cents >= MAX_CENTS:
        raise AdapterInputError(f"{field} is too large", field)
    return cents


def from_cents(cents: int) -> str:
    """Format integer cents as a portal decimal string with two places."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}"


def to_legacy_id(value: object, field: str) -> str:
    """Turn a portal id ("42") into legacy's ten-digit zero-padded form, refusing anything but 1-10 digits."""
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not text.isdigit() or not 1 <= len(text) <= 10 or int(text) == 0:
        raise AdapterInputError(f"{field} must be a positive number of at most 10 digits", field)
    return text.zfill(10)


def from_legacy_id(value: str) -> str:
    """Turn legacy's zero-padded id into the portal's plain form."""
    return value.lstrip("0") or "0"


def from_legacy_date(yyyymmdd: str, hhmmss: str | None = None) -> str:
    """Turn legacy YYYYMMDD (and HHMMSS, UTC) into ISO-8601."""
    date = f"{yyyymmdd[0:4]}-{yyyymmdd[4:6]}-{yyyymmdd[6:8]}"
    if hhmmss:
        return f"{date}T{hhmmss[0:2]}:{hhmmss[2:4]}:{hhmmss[4:6]}Z"
    return date
