"""Compare rules in routing_rules.yaml are refused at load with file:line and the reason when they cannot work."""

from __future__ import annotations

import pytest

from core.rules import RulesError, parse_rules
from parallel_run.normalisers import check_compare_rules
from tests.builders import COMPARE_RULES_HEAD

HEAD = COMPARE_RULES_HEAD


def refused(body: str) -> tuple[RulesError, str]:
    text = HEAD + body
    with pytest.raises(RulesError) as info:
        check_compare_rules(parse_rules(text, "rules.yaml"))
    return info.value, text


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_well_formed_compare_rules_load_into_the_spec() -> None:
    rules = parse_rules(
        HEAD
        + "      ignore: [$.as_of]\n"
        + '      critical: [$.balance, "$.legs[*].amount"]\n'
        + "      tolerance: {$.fx_rate: 0.0001}\n"
        + "      fold: {$.holder: [case, whitespace]}\n"
        + "      timestamps: {$.booked_at: minute}\n"
        + "      unordered: {$.legs: leg_id}\n"
        + '      normalise: {"$.items[0].phone": digits_only}\n',
        "rules.yaml",
    )
    check_compare_rules(rules)
    spec = rules.capabilities["accounts.balance"].compare
    assert spec.ignore == ("$.as_of",) and spec.critical == ("$.balance", "$.legs[*].amount")
    assert spec.tolerance == {"$.fx_rate": 0.0001} and spec.fold == {"$.holder": ("case", "whitespace")}
    assert spec.timestamps == {"$.booked_at": "minute"} and spec.unordered == {"$.legs": "leg_id"}
    assert spec.normalise == {"$.items[0].phone": "digits_only"} and spec.line == line_of(HEAD, "compare:")


@pytest.mark.parametrize(
    "rule",
    [
        '      ignore: ["$.items[].amount"]\n',
        "      critical: [amount]\n",
        "      tolerance: {$..amount: 0.01}\n",
        '      unordered: {"$.legs[-1]": id}\n',
        "      normalise: {$.a.1b: strip}\n",
    ],
)
def test_bad_json_path_syntax_is_refused_with_file_and_line(rule: str) -> None:
    err, text = refused(rule)
    assert (err.source, err.line, err.capability) == ("rules.yaml", line_of(text, rule.strip()), "accounts.balance")
    assert str(err).startswith(f"rules.yaml:{err.line}: [accounts.balance]")
    assert "is not a JSON path such as" in err.reason


def test_an_unknown_fold_option_is_refused() -> None:
    err, text = refused("      fold: {$.name: [case, accents]}\n")
    assert err.line == line_of(text, "accents") and err.capability == "accounts.balance"
    assert "accents" in err.reason


def test_a_path_both_ignored_and_critical_is_refused() -> None:
    err, _ = refused("      ignore: [$.amount, $.as_of]\n      critical: [$.amount]\n")
    assert (err.line, err.capability) == (line_of(HEAD, "accounts.balance:"), "accounts.balance")
    assert err.reason == "compare: $.amount cannot be both ignored and critical"
    assert str(err).startswith("rules.yaml:6: [accounts.balance]")


def test_an_unknown_normaliser_is_refused_naming_the_path_and_the_known_ones() -> None:
    err, text = refused("      normalise: {$.phone: phone_e164}\n")
    assert (err.source, err.line, err.capability) == ("rules.yaml", line_of(text, "compare:"), "accounts.balance")
    assert "unknown normaliser 'phone_e164' for $.phone (known: decimal, digits_only, iso_date, lower" in err.reason
