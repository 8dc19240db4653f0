"""Each transform gives the same value in Python (the stream) and in SQL (the snapshot), and refuses the same input."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from core.pgcluster import PgCluster
from replication.transforms import BUILTIN, Transform, TransformError, value_map

CASES: list[tuple[Transform, str, str, Any]] = [
    (BUILTIN["cents_to_decimal"], "bigint", "12345", Decimal("123.45")),
    (BUILTIN["cents_to_decimal"], "bigint", "-5", Decimal("-0.05")),
    (BUILTIN["cents_to_decimal"], "integer", "0", Decimal("0.00")),
    (BUILTIN["digits_to_int"], "char(10)", "0000001234", 1234),
    (BUILTIN["digits_to_int"], "text", "42", 42),
    (BUILTIN["yyyymmdd_to_date"], "char(8)", "20240229", date(2024, 2, 29)),
    (BUILTIN["yyyymmdd_to_timestamptz"], "char(8)", "19991231", datetime(1999, 12, 31, tzinfo=UTC)),
    (BUILTIN["hhmmss_to_time"], "char(6)", "235959", time(23, 59, 59)),
    (BUILTIN["rtrim"], "char(5)", "ab", "ab"),
    (BUILTIN["lower"], "varchar(20)", "Jane.DOE", "jane.doe"),
    (value_map({"PSTD": "posted", "RJCT": "rejected"}), "char(4)", "RJCT", "rejected"),
]
BAD: list[tuple[Transform, str, str]] = [
    (BUILTIN["digits_to_int"], "char(10)", "00000A1234"),
    (BUILTIN["yyyymmdd_to_date"], "char(8)", "20240230"),
    (BUILTIN["yyyymmdd_to_date"], "char(8)", "2024-1-1"),
    (BUILTIN["hhmmss_to_time"], "char(6)", "246000"),
    (value_map({"PSTD": "posted"}), "char(4)", "XXXX"),
]


def select(transform: Transform, sql_type: str) -> str:
    return f"SELECT {transform.sql('v')} FROM (SELECT CAST(%s AS {sql_type}) AS v) AS source"


def _source_value(sql_type: str, text: str) -> Any:
    if sql_type in ("bigint", "integer"):
        return int(text)
    if sql_type.startswith("char("):
        return text.ljust(int(sql_type[5:-1]))  # bpchar arrives padded
    return text


@pytest.fixture(scope="module")
def conn(pg_cluster: PgCluster) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_cluster.dsn(), autocommit=True, options="-c TimeZone=UTC") as connection:
        yield connection


@pytest.mark.parametrize(("transform", "sql_type", "text", "expected"), CASES, ids=lambda v: str(v)[:20])
def test_python_and_sql_forms_agree(
    conn: psycopg.Connection[Any], transform: Transform, sql_type: str, text: str, expected: Any
) -> None:
    assert transform.apply(_source_value(sql_type, text)) == expected
    sql_value = conn.execute(select(transform, sql_type), (text,)).fetchone()[0]  # type: ignore[index]
    assert sql_value == expected
    if isinstance(expected, Decimal):
        assert sql_value.as_tuple().exponent == expected.as_tuple().exponent == -2


@pytest.mark.parametrize(("transform", "sql_type", "text"), BAD, ids=lambda v: str(v)[:20])
def test_python_and_sql_forms_refuse_the_same_input(
    conn: psycopg.Connection[Any], transform: Transform, sql_type: str, text: str
) -> None:
    with pytest.raises(TransformError):
        transform.apply(_source_value(sql_type, text))
    with pytest.raises(psycopg.errors.DataError):
        conn.execute(select(transform, sql_type), (text,))


@pytest.mark.parametrize(("transform", "sql_type", "text", "expected"), CASES, ids=lambda v: str(v)[:20])
def test_the_fast_forms_from_wire_bytes_agree(transform: Transform, sql_type: str, text: str, expected: Any) -> None:
    wire = str(_source_value(sql_type, text)).encode()
    fast = transform.from_int_text if sql_type in ("bigint", "integer") else transform.from_text
    if fast is not None:
        assert fast(wire) == expected


@pytest.mark.parametrize(("transform", "sql_type", "text"), BAD, ids=lambda v: str(v)[:20])
def test_the_fast_forms_refuse_the_same_input(transform: Transform, sql_type: str, text: str) -> None:
    if transform.from_text is not None:
        with pytest.raises(ValueError):
            transform.from_text(_source_value(sql_type, text).encode())


def test_cents_refuse_fractions() -> None:
    with pytest.raises(TransformError, match="whole"):
        BUILTIN["cents_to_decimal"].apply(Decimal("1.5"))
