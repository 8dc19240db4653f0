"""Mask personal data in a value before it is stored or printed, leaving a hint and the evidence readable (pure).

Two nets: the field's name (email, phone, iban, card/pan, name, address, postcode, birth date, national ids) masks
the whole value; value patterns (emails, IBANs, Luhn-valid 12-19 digit card numbers, phone numbers) are masked
wherever they appear inside any string. Amounts, statuses, currencies and ids stay readable: they are the evidence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

from parallel_run.jsonpath import WILD, Token, parse

# Characters of an IBAN per country (ISO 13616 registry); matching the exact length keeps ids like PY2024... readable.
IBAN_LENGTHS: Final[Mapping[str, int]] = MappingProxyType({
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "BY": 28,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19,
    "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
})  # fmt: skip

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_IBAN = re.compile(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\w+\-.])(?:[0-9]{12,19}|[0-9]{4}[ -][0-9]{4,6}[ -][0-9]{4,5}(?:[ -][0-9]{1,4})?)(?![\w\-.])")
_PHONE_INTL = re.compile(r"(?<![\w+])\+[0-9](?:[ ()\-]{0,2}[0-9]){7,14}(?![\w])")
_PHONE_LOCAL = re.compile(r"(?<![\w\-:.])0[0-9]{2,4}[ \-]?[0-9]{3,4}[ \-]?[0-9]{3,4}(?![\w\-:.])")
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

# Words of a field name that say what the field holds.
_FIELD_WORDS: Final[Mapping[str, str]] = MappingProxyType({
    "email": "email", "emails": "email", "mail": "email",
    "phone": "phone", "phones": "phone", "mobile": "phone", "tel": "phone", "telephone": "phone",
    "msisdn": "phone", "fax": "phone",
    "iban": "iban", "ibans": "iban",
    "card": "card", "pan": "card", "cardnumber": "card", "cvv": "secret", "cvc": "secret",
    "name": "name", "names": "name", "firstname": "name", "lastname": "name", "fullname": "name",
    "surname": "name", "forename": "name", "holder": "name", "cardholder": "name", "owner": "name",
    "payee": "name", "beneficiary": "name",
    "address": "text", "addr": "text", "line1": "text", "line2": "text", "line3": "text", "street": "text",
    "postcode": "postcode", "zip": "postcode", "zipcode": "postcode", "postal": "postcode",
    "dob": "text", "birth": "text", "birthdate": "text", "ssn": "secret", "nino": "secret",
    "passport": "secret", "password": "secret", "secret": "secret", "token": "secret",
})  # fmt: skip
# A field whose last word is one of these is evidence (an id, an amount, a kind), whatever else its name says.
_EVIDENCE_WORDS: Final = frozenset({
    "id", "ids", "ref", "reference", "type", "kind", "status", "state", "brand", "scheme", "currency", "amount",
    "balance", "cents", "total", "count", "country", "verified", "valid", "at", "on",
})  # fmt: skip
# Card and phone patterns look like ids and amounts; in such fields they are ids and amounts.
_NUMERIC_EVIDENCE = _EVIDENCE_WORDS | {"number", "no", "seq", "sequence", "lsn", "ms", "ts", "timestamp"}


def mask_value(path: str, value: Any) -> str | None:
    """Return the JSON text of `value` at JSON path `path` with personal data masked (JSON null reads "null")."""
    return json.dumps(mask_json(path, value), ensure_ascii=False, default=str)


def mask_json(path: str, value: Any) -> Any:
    """Return a copy of the JSON value at `path` with personal data masked, structure and evidence kept."""
    try:
        tokens = parse(path)
    except ValueError:
        tokens = ()  # a non-JSON path (e.g. "status") has no field name to go by: value patterns still apply
    return _mask(tokens, value)


def mask_text(text: str) -> str:
    """Mask every email, IBAN, card number and phone number inside free text."""
    return _mask_patterns(text, numeric=True)


def _mask(at: tuple[Token, ...], value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask((*at, str(k)), v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask((*at, i), v) for i, v in enumerate(value)]
    category, numeric_evidence = _field_category(at)
    if value is None or isinstance(value, bool):
        return value
    if category is not None:
        return _MASKERS[category](str(value))
    if isinstance(value, str):
        return _mask_patterns(value, numeric=not numeric_evidence)
    return value  # numbers in fields not named as personal are amounts, counts, ids: evidence


def _field_category(at: tuple[Token, ...]) -> tuple[str | None, bool]:
    """The personal-data category named by the nearest object key of `at`, and whether it names numeric evidence."""
    key = next((tok for tok in reversed(at) if isinstance(tok, str) and tok != WILD), "")
    words = [w.lower() for w in _WORDS.findall(key)]
    if not words:
        return None, False
    last = words[-1]
    if last in _EVIDENCE_WORDS:
        return None, True
    joined = "".join(words)
    # The whole name first (cardNumber), then its words from the last: owner_email holds an email, not a name.
    category = next((_FIELD_WORDS[w] for w in (joined, *reversed(words)) if w in _FIELD_WORDS), None)
    return category, last in _NUMERIC_EVIDENCE


def _mask_patterns(text: str, numeric: bool) -> str:
    text = _EMAIL.sub(lambda m: _mask_email(m.group(0)), text)
    text = _IBAN.sub(lambda m: _mask_iban_match(m.group(0)), text)
    if numeric:
        text = _CARD.sub(lambda m: _mask_card(m.group(0)) if _luhn(m.group(0)) else m.group(0), text)
        text = _PHONE_INTL.sub(lambda m: _mask_phone(m.group(0)), text)
        text = _PHONE_LOCAL.sub(lambda m: _mask_phone(m.group(0)), text)
    return text


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _mask_iban_match(text: str) -> str:
    """Mask the IBAN at the start of `text` if it has its country's exact length; keep what follows it."""
    want = IBAN_LENGTHS.get(text[:2])
    if want is None:
        return text
    taken = 0
    for end, ch in enumerate(text, 1):
        taken += ch != " "
        if taken == want:
            rest = text[end:]
            # The IBAN must end at a word boundary, or it is the start of some longer code.
            return _mask_iban(text[:end]) + rest if not rest or rest[0] == " " else text
    return text


def _luhn(text: str) -> bool:
    digits = _digits(text)
    if not 12 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _mask_email(text: str) -> str:
    local, _, domain = text.partition("@")
    if not domain:
        return _mask_words(text)
    labels = domain.split(".")
    return f"{local[:1]}***@{labels[0][:1]}***.{labels[-1]}" if len(labels) > 1 else f"{local[:1]}***@***"


def _mask_iban(text: str) -> str:
    compact = text.replace(" ", "")
    return f"{compact[:4]}********{compact[-4:]}" if len(compact) > 8 else "****"


def _mask_card(text: str) -> str:
    digits = _digits(text)
    return f"****{digits[-4:]}" if len(digits) >= 12 else "****"


def _mask_phone(text: str) -> str:
    digits = _digits(text)
    if len(digits) < 6:
        return "****"
    lead = "+" if text.lstrip().startswith("+") else ""
    return f"{lead}{digits[:2]}******{digits[-2:]}"


def _mask_words(text: str) -> str:
    # An initial per word tells "Jo Smith" from "Jo  Smith " apart without telling who it is.
    words = text.split()
    return " ".join(f"{w[:1]}***" for w in words) if words else "***"


def _mask_postcode(text: str) -> str:
    compact = text.strip()
    return f"{compact[:2]}***" if len(compact) > 2 else "***"


def _mask_by_pattern(text: str) -> str:
    masked = _mask_patterns(text, numeric=True)
    return masked if masked != text else _mask_words(text)


def _mask_secret(_text: str) -> str:
    return "***"


_MASKERS: Final[Mapping[str, Callable[[str], str]]] = MappingProxyType({
    "email": lambda t: _mask_email(t.strip()) if "@" in t else _mask_words(t),
    "phone": lambda t: _mask_phone(t) if len(_digits(t)) >= 6 else _mask_words(t),
    "iban": lambda t: _mask_iban(t) if len(t.replace(" ", "")) > 8 else "****",
    "card": lambda t: _mask_card(t) if len(_digits(t)) >= 12 else "****",
    "name": _mask_words,
    "text": _mask_by_pattern,
    "postcode": _mask_postcode,
    "secret": _mask_secret,
})  # fmt: skip
