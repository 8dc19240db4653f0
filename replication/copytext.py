"""Build COPY text fields straight from pgoutput's text values, for inserts that need no Python value (pure).

pgoutput sends each value in its type's output form, which is also the type's COPY input form (the session uses
DateStyle=ISO etc.); only the COPY text escapes (backslash, tab, newline, carriage return) have to be added.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Final

NULL: Final = b"\\N"
# Types whose text form never holds a backslash, tab, newline or carriage return: no escaping needed.
PLAIN_OIDS: Final = frozenset({16, 20, 21, 23, 26, 700, 701, 1082, 1083, 1114, 1184, 1700, 2950})

FieldBuilder = Callable[[bytes], bytes]


def escape(raw: bytes) -> bytes:
    """Escape one value for COPY text format."""
    if b"\\" in raw or b"\t" in raw or b"\n" in raw or b"\r" in raw:
        return raw.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n").replace(b"\r", b"\\r")
    return raw


def format_value(value: Any) -> bytes:
    """Return the COPY text field of a transform's result (int, Decimal, str, date, time, datetime, bool)."""
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, int | Decimal):
        return str(value).encode()
    if isinstance(value, str):
        return escape(value.encode())
    if isinstance(value, datetime | date | time):
        return value.isoformat().encode()
    raise TypeError(f"no COPY text form for {type(value).__name__}")


def field_builder(type_oid: int, transformed: Callable[[bytes], Any] | None) -> FieldBuilder:
    """Return wire bytes -> COPY field for a column: as is, escaped, or through its (fused) transform."""
    if transformed is not None:
        return lambda raw: format_value(transformed(raw))
    if type_oid in PLAIN_OIDS:
        return bytes
    return escape
