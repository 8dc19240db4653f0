"""`strangler routes` against a real control-plane database: list, set, apply with a diff, history, refusals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from tests.builders import shipped_rules_text


@pytest.fixture
def env(new_database: Callable[[str], str], tmp_path: Path) -> dict[str, str]:
    rules = tmp_path / "routing_rules.yaml"
    rules.write_text(shipped_rules_text())
    return {"STRANGLER_DATABASE_URL": new_database("cli"), "STRANGLER_RULES": str(rules), "STRANGLER_ACTOR": "alice"}


def run(env: dict[str, str], *args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["routes", *args], env={**env, "COLUMNS": "200"}, input=input)
    return result.exit_code, result.output


def test_list_shows_every_capability_seeded_from_the_file(env: dict[str, str]) -> None:
    code, out = run(env, "list")
    assert code == 0
    for name in ("accounts.balance", "payments.create", "payments.get", "profile.update"):
        assert name in out


def test_set_then_history_records_who_what_and_why(env: dict[str, str]) -> None:
    code, out = run(
        env, "set", "accounts.balance", "--mode", "canary", "--percent", "10", "--reason", "first 10%", "--force"
    )
    assert code == 0 and "legacy -> canary 10%" in out
    code, out = run(env, "rollback", "accounts.balance", "--reason", "mismatches")
    assert code == 0 and "canary 10% -> legacy" in out
    code, out = run(env, "history", "accounts.balance")
    assert code == 0 and "alice" in out and "rollback: mismatches" in out and "first 10%" in out
    assert out.index("rollback: mismatches") < out.index("first 10%")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("set", "loans.apply", "--mode", "cloud", "--reason", "x"), "unknown capability 'loans.apply'"),
        (("set", "payments.create", "--mode", "events", "--reason", "x"), "critical capability"),
        (("set", "profile.update", "--mode", "sideways", "--reason", "x"), "unknown mode 'sideways'"),
        (("set", "accounts.balance", "--mode", "canary", "--percent", "101", "--reason", "x"), "between 0 and 100"),
        (("set", "accounts.balance", "--mode", "cloud"), "Missing option '--reason'"),
    ],
)
def test_bad_changes_exit_non_zero_with_a_clear_message(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    code, out = run(env, *args)
    assert code != 0 and message in out and "Traceback" not in out


def test_apply_shows_the_diff_and_asks_first(env: dict[str, str], tmp_path: Path) -> None:
    wanted = tmp_path / "wanted.yaml"
    wanted.write_text(
        shipped_rules_text().replace(
            "mode: legacy\n    adapters: {legacy: legacy.balance}",
            "mode: cloud\n    adapters: {legacy: legacy.balance}",
        )
    )
    code, out = run(env, "apply", str(wanted), "--force", input="n\n")
    assert code != 0 and "accounts.balance: legacy -> cloud" in out and "nothing applied" in out
    assert "accounts.balance" in run(env, "show", "accounts.balance")[1]
    assert "mode: legacy" in run(env, "show", "accounts.balance")[1]
    code, out = run(env, "apply", str(wanted), "--yes", "--force", "--reason", "cut over reads")
    assert code == 0 and "applied 1 change(s)" in out
    assert "mode: cloud" in run(env, "show", "accounts.balance")[1]
    assert "no changes" in run(env, "apply", str(wanted), "--yes")[1]


def test_apply_refuses_an_invalid_file_naming_file_and_line(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        shipped_rules_text().replace("critical: true\n    mode: legacy", "critical: true\n    mode: events", 1)
    )
    code, out = run(env, "apply", str(bad), "--yes")
    assert code != 0 and f"{bad}:" in out and "critical capability cannot be answered in events mode" in out


def test_missing_database_setting_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["routes", "list"], env={"STRANGLER_DATABASE_URL": None})
    assert result.exit_code != 0 and "STRANGLER_DATABASE_URL is not set" in result.output


def test_show_tells_the_parallel_settings_and_the_readiness_verdict(env: dict[str, str]) -> None:
    code, out = run(env, "show", "payments.create")
    assert code == 0, out
    assert "legacy answers, cloud is shadowed in dry run; 100% sampled" in out
    assert "(with a shadow of the other side)" in out
    assert "readiness: NOT READY: 0 comparisons" in out
    code, out = run(env, "show", "accounts.balance")
    assert code == 0 and "10% also asked twice for noise" in out, out
