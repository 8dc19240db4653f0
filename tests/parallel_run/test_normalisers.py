"""Named normalisers: each is total and does one thing; an unknown name is refused at load with file:line."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.rules import RulesError, parse_rules
from parallel_run.normalisers import check_compare_rules, normalisers
from tests.builders import COMPARE_RULES_HEAD

RULES = COMPARE_RULES_HEAD + '      normalise: {"$.phone": digits_only, "$.amount": NAME}\n'


def test_the_registry_is_read_only_and_names_the_shipped_normalisers() -> None:
    registry = normalisers()
    assert set(registry) >= {"strip", "digits_only", "lower", "decimal", "iso_date"}
    with pytest.raises(TypeError):
        registry["evil"] = print  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "value", "out"),
    [
        ("strip", "  a b \n", "a b"),
        ("strip", 5, 5),
        ("lower", "ÄB", "äb"),
        ("lower", None, None),
        ("digits_only", "+44 (0)20 7946-0018", "4402079460018"),
        ("digits_only", 4420, "4420"),
        ("digits_only", True, True),
        ("digits_only", 1.5, 1.5),
        ("iso_date", "2024-01-02T23:30:00-02:00", "2024-01-03"),
        ("iso_date", "2024-01-02T10:00:00Z", "2024-01-02"),
        ("iso_date", "20240102", "2024-01-02"),
        ("iso_date", "2024-01-02", "2024-01-02"),
        ("iso_date", "2024-13-02", "2024-13-02"),
        ("iso_date", "yesterday", "yesterday"),
        ("iso_date", 20240102, 20240102),
    ],
)
def test_normalisers_do_one_thing_and_leave_what_they_do_not_understand(name: str, value: object, out: object) -> None:
    assert normalisers()[name](value) == out


@pytest.mark.parametrize(
    ("value", "out"),
    [("100.50", Decimal("100.5")), (" 1e2 ", Decimal("100")), (100, Decimal(100)), (0.1, Decimal("0.1")),
     ("-.5", Decimal("-0.5"))],
)  # fmt: skip
def test_decimal_reads_numbers_and_numeric_strings(value: object, out: Decimal) -> None:
    got = normalisers()["decimal"](value)
    assert isinstance(got, Decimal) and got == out


@pytest.mark.parametrize("value", ["12,50", "abc", "", "1.2.3", "NaN", "Infinity", True, None])
def test_decimal_leaves_non_numbers_alone(value: object) -> None:
    assert normalisers()["decimal"](value) == value


def test_known_normalisers_pass_the_load_check() -> None:
    check_compare_rules(parse_rules(RULES.replace("NAME", "decimal"), "rules.yaml"))


def test_an_unknown_normaliser_is_refused_with_file_line_and_the_known_names() -> None:
    text = RULES.replace("NAME", "roundish")
    with pytest.raises(RulesError) as info:
        check_compare_rules(parse_rules(text, "rules.yaml"))
    err = info.value
    compare_line = text.splitlines().index("    compare:") + 1
    assert (err.source, err.line, err.capability) == ("rules.yaml", compare_line, "accounts.balance")
    assert str(err) == (
        f"rules.yaml:{compare_line}: [accounts.balance] unknown normaliser 'roundish' for $.amount "
        "(known: decimal, digits_only, iso_date, lower, strip)"
    )
