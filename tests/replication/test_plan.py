"""Planning a relation into its target: columns, keys, DDL for drift, and the refusals that prevent corruption."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from replication.config import parse_mapping
from replication.pgoutput import UNCHANGED, Column, Relation
from replication.plan import IncompatibleChange, SourceFacts, TargetColumn, compatible, plan_table
from replication.transforms import TransformError

MAPPING = parse_mapping(
    """\
tables:
  cbs.acctmast:
    target: cloud.accounts
    columns:
      acctno: {to: id, transform: digits_to_int}
      curbal: {to: balance, transform: cents_to_decimal}
      opendt: {to: updated_at, transform: yyyymmdd_to_timestamptz}
    exclude: [status]
""",
    "m.yaml",
).tables["cbs.acctmast"]

COLUMNS = [("acctno", 1042, 14, "character(10)"), ("ccy", 1042, 7, "character(3)"), ("curbal", 20, -1, "bigint"),
           ("status", 1042, 5, "character(1)"), ("opendt", 1042, 12, "character(8)")]  # fmt: skip
TARGET = {
    "id": TargetColumn("id", "bigint", False),
    "ccy": TargetColumn("ccy", "character(3)", False),
    "balance": TargetColumn("balance", "numeric(18,2)", False),
    "updated_at": TargetColumn("updated_at", "timestamp with time zone", False),
}


def relation(columns: list[tuple[str, int, int, str]] = COLUMNS, key: str = "acctno") -> Relation:
    cols = tuple(Column(name, oid, mod, name == key) for name, oid, mod, _ in columns)
    return Relation(1, "cbs", "acctmast", "d", cols)


def facts(columns: list[tuple[str, int, int, str]] = COLUMNS, **defaults: str) -> SourceFacts:
    return SourceFacts({c[0]: c[3] for c in columns}, ("acctno",), defaults)


@pytest.mark.parametrize(
    ("source", "target", "ok"),
    [
        ("bigint", "bigint", True),
        ("integer", "bigint", True),
        ("bigint", "integer", True),  # out-of-range values are refused loudly by the target
        ("bigint", "numeric(18,2)", True),
        ("numeric(20,2)", "numeric(18,2)", True),
        ("numeric(20,4)", "numeric(18,2)", False),  # would round quietly
        ("numeric", "numeric(18,2)", False),
        ("numeric(10,2)", "numeric", True),
        ("numeric(10,2)", "bigint", False),
        ("character varying(60)", "text", True),
        ("character(3)", "character varying", True),
        ("text", "integer", False),
        ("integer", "text", True),
        ("json", "jsonb", True),
        ("timestamp(6) with time zone", "timestamp(3) with time zone", False),
        ("timestamp with time zone", "timestamp without time zone", False),
        ("date", "timestamp with time zone", False),
        ("real", "double precision", True),
        ("double precision", "real", False),
    ],
)
def test_type_compatibility(source: str, target: str, ok: bool) -> None:
    assert compatible(source, target) is ok


def test_plan_maps_renames_transforms_and_exclusions() -> None:
    plan = plan_table(MAPPING, relation(), facts(), TARGET)
    assert [(c.source, c.target) for c in plan.columns] == [
        ("acctno", "id"), ("ccy", "ccy"), ("curbal", "balance"), ("opendt", "updated_at"),
    ]  # fmt: skip
    assert [c.target for c in plan.key] == ["id"] and plan.ddl == () and plan.keyed
    row = plan.row((b"0000000042", b"EUR", b"12345", b"A", b"20240115"))
    assert row == (42, "EUR", Decimal("123.45"), datetime(2024, 1, 15, tzinfo=UTC))
    assert plan.key_of((b"0000000042", None, None, None, None)) == (42,)
    assert plan.row((b"0000000042", b"EUR", UNCHANGED, None, None))[2:] == (UNCHANGED, None)
    assert '"curbal"::numeric / 100' in plan.select_sql and "status" not in plan.select_sql


def test_a_missing_target_table_is_created_with_its_key() -> None:
    plan = plan_table(MAPPING, relation(), facts(), None)
    assert plan.ddl[0] == 'CREATE SCHEMA IF NOT EXISTS "cloud"'
    assert plan.ddl[1] == (
        'CREATE TABLE IF NOT EXISTS "cloud"."accounts" ("id" bigint, "ccy" character(3), '
        '"balance" numeric(20,2), "updated_at" timestamp with time zone, PRIMARY KEY ("id"))'
    )


def test_a_column_added_on_the_source_is_added_to_the_target_with_its_default() -> None:
    grown = [*COLUMNS, ("branch", 25, -1, "text")]
    plan = plan_table(MAPPING, relation(grown), facts(grown, branch="'HQ'::text"), TARGET)
    assert plan.ddl == ('ALTER TABLE "cloud"."accounts" ADD COLUMN IF NOT EXISTS "branch" text DEFAULT \'HQ\'::text',)
    assert plan.columns[-1].target == "branch"


def test_a_type_change_the_transform_cannot_take_names_table_and_column() -> None:
    changed = [c if c[0] != "curbal" else ("curbal", 25, -1, "text") for c in COLUMNS]
    with pytest.raises(IncompatibleChange) as caught:
        plan_table(MAPPING, relation(changed), facts(changed), TARGET)
    assert (caught.value.table, caught.value.column) == ("cbs.acctmast", "curbal")
    assert "cents_to_decimal" in str(caught.value)


def test_a_pass_through_type_change_the_target_cannot_hold_names_table_and_column() -> None:
    changed = [c if c[0] != "ccy" else ("ccy", 23, -1, "integer") for c in COLUMNS]
    with pytest.raises(IncompatibleChange, match=r"cbs.acctmast column ccy: gives integer but cloud.accounts.ccy is"):
        plan_table(MAPPING, relation(changed), facts(changed), TARGET)


def test_a_mapped_column_that_disappeared_is_refused() -> None:
    shrunk = [c for c in COLUMNS if c[0] != "opendt"]
    with pytest.raises(IncompatibleChange, match=r"column opendt: is mapped \(m.yaml:2\) but the source no longer"):
        plan_table(MAPPING, relation(shrunk), facts(shrunk), TARGET)


def test_a_not_null_target_column_no_longer_fed_is_refused() -> None:
    shrunk = [c for c in COLUMNS if c[0] != "ccy"]
    with pytest.raises(IncompatibleChange, match=r"cloud.accounts column ccy: is NOT NULL without a default"):
        plan_table(MAPPING, relation(shrunk), facts(shrunk), TARGET)


def test_the_key_cannot_be_excluded() -> None:
    with pytest.raises(IncompatibleChange, match="part of the key"):
        plan_table(MAPPING, relation(key="status"), SourceFacts(facts().types, ("status",)), TARGET)


def test_a_value_the_transform_cannot_take_names_the_column() -> None:
    plan = plan_table(MAPPING, relation(), facts(), TARGET)
    with pytest.raises(TransformError, match=r"cbs.acctmast column opendt: cannot carry b'2024013X'"):
        plan.row((b"0000000042", b"EUR", b"1", b"A", b"2024013X"))


def test_without_a_key_the_whole_row_is_the_identity() -> None:
    plan = plan_table(MAPPING, relation(), SourceFacts(facts().types, ()), None)
    assert not plan.keyed and len(plan.key) == len(plan.columns) and "PRIMARY KEY" not in plan.ddl[1]
