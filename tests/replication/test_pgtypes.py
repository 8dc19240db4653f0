"""Text values as pgoutput sends them become the Python values a target driver writes back unchanged."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from uuid import UUID

import pytest

from replication.pgoutput import Insert, Relation, Type
from replication.pgtypes import converter, parse_array
from tests.replication.test_pgoutput import captured, of


def test_the_captured_row_converts_by_its_relation_types() -> None:
    messages = captured("types")
    relation = of(Relation, messages)[0]
    names = {t.type_oid: t.name for t in of(Type, messages)}
    row = of(Insert, messages)[0].new
    values = {
        col.name: converter(col.type_oid, names.get(col.type_oid, ""))(raw)
        for col, raw in zip(relation.columns, row, strict=True)
    }
    assert values["id"] == 1
    assert values["n"] == Decimal("12.34") and isinstance(values["n"], Decimal)
    assert values["ts"] == datetime(2024, 1, 15, 8, 0, 0, 500000, tzinfo=UTC)
    assert values["d"] == date(2024, 1, 15)
    assert values["j"] == {"a": [1, 2]} and values["jb"] == {"b": None}
    assert values["b"] == b"\x00\xff"
    assert values["a"] == [1, None, 3]
    assert values["ta"] == ["a b", 'c"d', None]
    assert values["m"] == "happy" and values["ma"] == ["sad", "ok"]
    assert values["f"] != values["f"]  # NaN
    assert values["u"] == UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    assert values["big"] == "x" * 5000


@pytest.mark.parametrize(
    ("oid", "raw", "expected"),
    [
        (16, b"t", True),
        (16, b"f", False),
        (20, b"-9223372036854775808", -(2**63)),
        (1700, b"NaN", "NaN"),
        (1700, b"-0.000001", Decimal("-0.000001")),
        (1082, b"infinity", "infinity"),
        (1114, b"2024-02-29 23:59:59.999999", datetime(2024, 2, 29, 23, 59, 59, 999999)),
        (1184, b"2024-01-15 10:00:00+05:30", datetime.fromisoformat("2024-01-15T10:00:00+05:30")),
        (1083, b"23:59:59", time(23, 59, 59)),
        (1042, b"ab  ", "ab  "),
        (17, b"\\x", b""),
        (1186, b"1 day 02:00:00", "1 day 02:00:00"),
        (3807, b'{"{\\"a\\": 1}",null}', [{"a": 1}, None]),
        (1231, b"{{1.5,2},{3,NULL}}", [[Decimal("1.5"), Decimal("2")], [Decimal("3"), None]]),
        (1009, b'{"",NULL,"NULL","x,y","\\\\"}', ["", None, "NULL", "x,y", "\\"]),
        (1007, b"[0:1]={7,8}", [7, 8]),
        (1007, b"{}", []),
    ],
)
def test_values_convert(oid: int, raw: bytes, expected: object) -> None:
    value = converter(oid)(raw)
    if expected == "NaN":
        assert value.is_nan()  # type: ignore[attr-defined]
    else:
        assert value == expected


def test_unknown_types_stay_text_and_unknown_arrays_become_lists_of_text() -> None:
    assert converter(99999, "mood")(b"happy") == "happy"
    assert converter(99998, "_mood")(b"{happy,NULL}") == ["happy", None]


@pytest.mark.parametrize("text", ["{1,2", "1,2}", "{1,2}x", '{"a}'])
def test_malformed_array_literals_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_array(text, int)


def test_bytea_outside_hex_format_is_refused() -> None:
    with pytest.raises(ValueError, match="hex"):
        converter(17)(b"\\000")
