"""The cutover gate: more cloud traffic needs a READY verdict, or --force with a reason the audit trail keeps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from core.db import make_engine
from core.migrate import create_schema
from parallel_run.gate import cloud_share
from parallel_run.model import Comparison
from parallel_run.store import ComparisonStore
from tests.builders import shipped_rules, shipped_rules_text

SHIPPED_READINESS = (
    "readiness: {min_comparisons: 1000, min_match_rate: 0.999, max_critical_mismatches: 0, window_s: 86400}"
)


@pytest.fixture
def env(new_database: Callable[[str], str], tmp_path: Path) -> dict[str, str]:
    rules = tmp_path / "routing_rules.yaml"
    # A small bar for the READY case: 5 comparisons over 60 s.
    rules.write_text(
        shipped_rules_text().replace(
            SHIPPED_READINESS,
            "readiness: {min_comparisons: 5, min_match_rate: 0.99, max_critical_mismatches: 0, window_s: 60}",
        )
    )
    return {"STRANGLER_DATABASE_URL": new_database("gate"), "STRANGLER_RULES": str(rules), "STRANGLER_ACTOR": "bob"}


def run(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["routes", *args], env={**env, "COLUMNS": "200"})
    return result.exit_code, result.output


def test_cutting_over_is_refused_while_not_ready_naming_the_failing_criteria(env: dict[str, str]) -> None:
    code, out = run(env, "set", "accounts.balance", "--mode", "cloud", "--reason", "looks fine")
    assert code != 0 and "NOT READY" in out and "0 comparisons" in out and "at least 5 needed" in out
    assert "mode: legacy" in run(env, "show", "accounts.balance")[1]
    code, out = run(env, "set", "accounts.balance", "--mode", "canary", "--percent", "5", "--reason", "x")
    assert code != 0 and "NOT READY" in out


def test_changes_that_do_not_add_cloud_traffic_pass(env: dict[str, str]) -> None:
    assert run(env, "set", "accounts.balance", "--mode", "parallel", "--reason", "start comparing")[0] == 0
    run(env, "set", "accounts.balance", "--mode", "canary", "--percent", "20", "--reason", "x", "--force")
    code, out = run(env, "set", "accounts.balance", "--mode", "canary", "--percent", "10", "--reason", "less")
    assert code == 0 and "canary 20% -> canary 10%" in out
    assert run(env, "rollback", "accounts.balance", "--reason", "back")[0] == 0


def test_a_forced_cutover_records_that_it_was_forced_and_why(env: dict[str, str]) -> None:
    code, out = run(env, "set", "accounts.balance", "--mode", "cloud", "--reason", "CAB-123 approved", "--force")
    assert code == 0 and "legacy -> cloud" in out
    history = run(env, "history", "accounts.balance")[1]
    assert "CAB-123 approved [FORCED past NOT READY: 0 comparisons" in history.replace("\n", " ").replace("│", "")


def test_apply_gates_each_changed_capability(env: dict[str, str], tmp_path: Path) -> None:
    wanted = tmp_path / "wanted.yaml"
    wanted.write_text(
        shipped_rules_text().replace(
            "mode: legacy\n    adapters: {legacy: legacy.balance}",
            "mode: cloud\n    adapters: {legacy: legacy.balance}",
        )
    )
    code, out = run(env, "apply", str(wanted), "--yes")
    assert code != 0 and "accounts.balance is NOT READY" in out
    assert "mode: legacy" in run(env, "show", "accounts.balance")[1]
    assert run(env, "apply", str(wanted), "--yes", "--force", "--reason", "drill")[0] == 0
    assert "mode: cloud" in run(env, "show", "accounts.balance")[1]


def test_a_ready_capability_is_cut_over_without_force(env: dict[str, str]) -> None:
    engine = make_engine(env["STRANGLER_DATABASE_URL"], pool_size=1)
    create_schema(engine)
    now = datetime.now(UTC)
    ComparisonStore(engine).record(
        [
            Comparison(now - timedelta(seconds=90 - 20 * i), "accounts.balance", f"r{i}", "legacy", "cloud",
                       200, 200, 1.0, 2.0, "match")
            for i in range(5)
        ]
    )  # fmt: skip
    engine.dispose()
    code, out = run(env, "set", "accounts.balance", "--mode", "cloud", "--reason", "evidence is clean")
    assert code == 0 and "legacy -> cloud" in out, out


def test_cloud_share_per_mode() -> None:
    cap = shipped_rules().capabilities["accounts.balance"]
    routes = [("legacy", None), ("parallel", None), ("canary", 30), ("cloud", None)]
    assert [cloud_share(cap, mode, percent) for mode, percent in routes] == [0, 0, 30, 100]
