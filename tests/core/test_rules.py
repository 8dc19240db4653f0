"""The rules loader accepts the shipped file and refuses bad ones with file, line and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.rules import RulesError, load_rules, parse_rules
from tests.builders import SHIPPED_RULES, shipped_rules_text


def refused(text: str) -> RulesError:
    with pytest.raises(RulesError) as info:
        parse_rules(text, "rules.yaml")
    return info.value


def test_shipped_file_loads_into_frozen_capabilities() -> None:
    rules = load_rules(SHIPPED_RULES)
    balance = rules.capabilities["accounts.balance"]
    assert balance.path == "/v1/accounts/<account_id>/balance"
    assert balance.critical and balance.mode == "legacy" and not balance.is_write
    assert rules.capabilities["payments.create"].idempotency == "required"
    assert rules.upstreams["legacy"].breaker_fail_max == 5
    with pytest.raises(AttributeError):
        balance.mode = "cloud"  # type: ignore[misc]


def test_invalid_yaml_names_the_line() -> None:
    err = refused("version: 1\nupstreams: [a,\n")
    assert err.source == "rules.yaml" and err.line >= 2 and "invalid YAML" in err.reason


def test_schema_violation_names_line_and_capability() -> None:
    text = shipped_rules_text().replace("read_timeout_ms: 2000", "read_timeout_ms: fast")
    err = refused(text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "read_timeout_ms: fast" in ln)
    assert (err.line, err.capability) == (line, "accounts.balance")
    assert str(err).startswith(f"rules.yaml:{line}: [accounts.balance]")


def test_critical_capability_in_events_mode_is_refused() -> None:
    text = shipped_rules_text().replace(
        "mode: legacy\n    adapters: {legacy: legacy.balance}", "mode: events\n    adapters: {legacy: legacy.balance}"
    )
    with pytest.raises(RulesError, match="critical capability cannot be answered in events mode"):
        parse_rules(text, "rules.yaml", modes={"legacy", "cloud", "canary", "events"})


def test_unknown_mode_is_refused_naming_the_known_ones() -> None:
    err = refused(shipped_rules_text().replace("mode: legacy", "mode: sideways", 1))
    assert err.capability == "accounts.balance" and "unknown mode 'sideways'" in err.reason


def test_two_capabilities_on_one_route_are_refused() -> None:
    text = shipped_rules_text() + (
        '  accounts.balance_again:\n    match: {method: GET, path: "/v1/accounts/{id}/balance"}\n    mode: legacy\n'
    )
    assert "matches the same route as accounts.balance" in refused(text).reason


def test_duplicate_keys_are_refused_not_silently_merged() -> None:
    text = shipped_rules_text().replace("  payments.get:", "  payments.create:")
    assert "duplicate key 'payments.create'" in refused(text).reason


def test_undeclared_upstream_is_refused() -> None:
    text = shipped_rules_text().replace("adapters: {legacy: legacy.balance}", "adapters: {mainframe: legacy.balance}")
    assert "undeclared upstream 'mainframe'" in refused(text).reason


def test_critical_write_without_required_idempotency_is_refused() -> None:
    text = shipped_rules_text().replace("idempotency: required", "idempotency: optional")
    assert "must require an Idempotency-Key" in refused(text).reason


def test_canary_sticky_field_of_a_read_must_be_a_path_parameter() -> None:
    text = shipped_rules_text().replace("sticky_by: account_id", "sticky_by: customer")
    assert text != shipped_rules_text()
    assert "not a path parameter" in refused(text).reason


def test_empty_and_unreadable_files_are_refused(tmp_path: Path) -> None:
    assert "empty" in refused("").reason
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")
