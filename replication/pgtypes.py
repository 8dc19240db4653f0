"""Turn PostgreSQL text-format values (as pgoutput sends them) into Python values by type OID (pure, no I/O).

The replication session runs with DateStyle=ISO, IntervalStyle=postgres, TimeZone=UTC and bytea_output=hex, so
each type has one text form. Types without a converter (enums, domains, intervals, ranges, ...) stay `str`, which
PostgreSQL accepts back as input.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

Converter = Callable[[bytes], Any]


def _text(raw: bytes) -> str:
    return raw.decode("utf-8")


def _bool(raw: bytes) -> bool:
    return raw == b"t"


def _bytea(raw: bytes) -> bytes:
    if raw[:2] != b"\\x":
        raise ValueError("bytea value is not in hex format (set bytea_output=hex)")
    return bytes.fromhex(raw[2:].decode("ascii"))


def _date(raw: bytes) -> date | str:
    text = raw.decode("ascii")
    try:
        return date.fromisoformat(text)
    except ValueError:
        return text  # infinity, -infinity, BC dates: PostgreSQL reads them back as they are


def _timestamp(raw: bytes) -> datetime | str:
    text = raw.decode("ascii")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return text


def _time(raw: bytes) -> time | str:
    text = raw.decode("ascii")
    try:
        return time.fromisoformat(text)
    except ValueError:
        return text  # 24:00:00


def _json(raw: bytes) -> Any:
    return json.loads(raw)


SCALARS: Final[dict[int, Converter]] = {
    16: _bool,
    17: _bytea,
    18: _text,  # "char"
    19: _text,  # name
    20: int,
    21: int,
    23: int,
    25: _text,
    26: int,  # oid
    114: _json,
    700: float,
    701: float,
    1042: _text,  # bpchar keeps its padding, as PostgreSQL sends it
    1043: _text,
    1082: _date,
    1083: _time,
    1114: _timestamp,
    1184: _timestamp,
    1700: lambda raw: Decimal(raw.decode("ascii")),
    2950: lambda raw: UUID(raw.decode("ascii")),
    3802: _json,
}

# Array type OID -> element type OID, for the element types above.
ARRAYS: Final[dict[int, int]] = {
    1000: 16, 1001: 17, 1002: 18, 1003: 19, 1016: 20, 1005: 21, 1007: 23, 1009: 25, 1028: 26, 199: 114,
    1021: 700, 1022: 701, 1014: 1042, 1015: 1043, 1182: 1082, 1183: 1083, 1115: 1114, 1185: 1184,
    1231: 1700, 2951: 2950, 3807: 3802,
}  # fmt: skip


# format_type names (without modifiers) of the scalar types above.
BY_NAME: Final[dict[str, int]] = {
    "boolean": 16, "bytea": 17, '"char"': 18, "name": 19, "bigint": 20, "smallint": 21, "integer": 23, "text": 25,
    "oid": 26, "json": 114, "real": 700, "double precision": 701, "character": 1042, "character varying": 1043,
    "date": 1082, "time without time zone": 1083, "timestamp without time zone": 1114,
    "timestamp with time zone": 1184, "numeric": 1700, "uuid": 2950, "jsonb": 3802,
}  # fmt: skip


def parse_array(text: str, element: Callable[[str], Any]) -> list[Any]:
    """Parse a PostgreSQL array literal (`{1,NULL,"a b"}`, nested, with an optional `[1:2]=` prefix) into lists."""
    if text.startswith("["):
        text = text[text.index("=") + 1 :]
    pos = 0

    def parse() -> list[Any]:
        nonlocal pos
        if text[pos] != "{":
            raise ValueError(f"array literal expected '{{' at {pos}: {text!r}")
        pos += 1
        items: list[Any] = []
        if text[pos] == "}":
            pos += 1
            return items
        while True:
            if text[pos] == "{":
                items.append(parse())
            elif text[pos] == '"':
                pos += 1
                chars = []
                while text[pos] != '"':
                    if text[pos] == "\\":
                        pos += 1
                    chars.append(text[pos])
                    pos += 1
                pos += 1
                items.append(element("".join(chars)))
            else:
                end = pos
                while text[end] not in ",}":
                    end += 1
                token = text[pos:end]
                items.append(None if token == "NULL" else element(token))
                pos = end
            if text[pos] == "}":
                pos += 1
                return items
            if text[pos] != ",":
                raise ValueError(f"array literal expected ',' at {pos}: {text!r}")
            pos += 1

    try:
        result = parse()
    except IndexError:
        raise ValueError(f"array literal ends early: {text!r}") from None
    if pos != len(text):
        raise ValueError(f"array literal has trailing text: {text!r}")
    return result


def converter(type_oid: int, type_name: str = "") -> Converter:
    """Return the bytes -> Python function for a type; unknown arrays (name `_x`) give lists of str, others str."""
    scalar = SCALARS.get(type_oid)
    if scalar is not None:
        return scalar
    element_oid = ARRAYS.get(type_oid)
    if element_oid is not None or type_name.startswith("_"):
        inner = SCALARS.get(element_oid or 0, _text)

        def element(token: str) -> Any:
            return inner(token.encode("utf-8"))

        return lambda raw: parse_array(raw.decode("utf-8"), element)
    return _text
