"""The mapping file: the shipped sandbox mapping loads, and a bad file is refused with its file:line and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from replication.config import ConfigError, load_mapping, parse_mapping
from replication.transforms import BUILTIN

GOOD = """\
slot: s1
tables:
  cbs.acctmast:
    target: cloud.accounts
    columns:
      acctno: {to: id, transform: digits_to_int}
      ccy: currency
      stat: {transform: {map: {A: active, C: closed}}}
    exclude: [opendt]
"""


def test_the_shipped_sandbox_mapping_loads() -> None:
    mapping = load_mapping()
    assert mapping.slot == mapping.publication == "strangler_legacy"
    assert list(mapping.tables) == ["cbs.custmast", "cbs.acctmast", "cbs.payments", "cbs.ledger"]
    accounts = mapping.tables["cbs.acctmast"]
    assert accounts.target == "cloud.accounts" and accounts.exclude == {"status"}
    assert accounts.columns["curbal"].target == "balance"
    assert accounts.columns["curbal"].transform is BUILTIN["cents_to_decimal"]
    assert mapping.source == "replication/sandbox_mapping.yaml" and accounts.line > 1


def test_rules_resolve_renames_pass_through_and_exclusions() -> None:
    table = parse_mapping(GOOD, "m.yaml").tables["cbs.acctmast"]
    assert table.rule_for("ccy").target == "currency"  # type: ignore[union-attr]
    assert table.rule_for("curbal").target == "curbal"  # type: ignore[union-attr]
    assert table.rule_for("opendt") is None
    stat = table.rule_for("stat")
    assert stat is not None and stat.target == "stat" and stat.transform is not None
    assert stat.transform.apply("A") == "active"
    assert table.where() == "m.yaml:3"


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("", 1, "the file is empty"),
        ("tables: [", 1, "invalid YAML"),
        ("tables:\n  cbs.a: {target: c.a}\n  cbs.a: {target: c.b}\n", 3, "duplicate key 'cbs.a'"),
        ("tables: {}\n", 1, "tables: {} should be non-empty"),
        ("tables:\n  a: {target: c.a}\n", 2, "'a' does not match"),
        ("tables:\n  cbs.a:\n    target: nodot\n", 3, "tables/cbs.a/target: 'nodot' does not match"),
        ("tables:\n  cbs.a:\n    target: c.a\n    colums: {}\n", 4, "Additional properties are not allowed"),
        ("tables:\n  cbs.a:\n    target: c.a\n    columns:\n      x: {transform: nope}\n", 5, "unknown transform"),
        ("tables:\n  cbs.a:\n    target: c.a\n    columns:\n      x: y\n    exclude: [x]\n", 5, "mapped and excluded"),
        ("tables:\n  cbs.a:\n    target: c.a\n    columns:\n      x: z\n      y: z\n", 6, "both feed 'z'"),
        ("tables:\n  cbs.a: {target: c.a}\n  cbs.b: {target: c.a}\n", 3, "cbs.b and cbs.a both feed c.a"),
        ("slot: Bad-Name\ntables:\n  cbs.a: {target: c.a}\n", 1, "slot: 'Bad-Name' does not match"),
    ],
)
def test_a_bad_mapping_is_refused_with_file_line_and_reason(text: str, line: int, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_mapping(text, "bad.yaml")
    assert caught.value.line == line, str(caught.value)
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"bad.yaml:{line}: ")


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_mapping(tmp_path / "missing.yaml")
