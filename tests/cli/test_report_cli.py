"""`strangler report` against a real control-plane database holding a known parallel run."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from core.db import make_engine
from core.migrate import create_schema
from tests.builders import shipped_rules_text
from tests.parallel_run import report_world as w

LENIENT = "    readiness: {min_comparisons: 30, min_match_rate: 0.7, max_critical_mismatches: 5, window_s: 3600}\n"
WINDOW = ("--since", w.SINCE.isoformat(), "--until", w.UNTIL.isoformat())


def rules_text() -> str:
    """The shipped rules, with payments.create given thresholds the seeded run meets (others keep theirs)."""
    head, sep, tail = shipped_rules_text().partition("  payments.create:\n")
    block, rest = tail.split("\n\n", 1)
    block = "\n".join(line for line in block.splitlines() if not line.startswith("    readiness:"))
    return head + sep + block + "\n" + LENIENT + "\n" + rest


@pytest.fixture
def env(new_database: Callable[[str], str], tmp_path: Path) -> dict[str, str]:
    rules = tmp_path / "routing_rules.yaml"
    rules.write_text(rules_text())
    url = new_database("report_cli")
    engine = make_engine(url, pool_size=1)
    create_schema(engine)
    w.seed(engine)
    engine.dispose()
    return {"STRANGLER_DATABASE_URL": url, "STRANGLER_RULES": str(rules), "COLUMNS": "200"}


def run(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["report", *args], env=env)
    return result.exit_code, result.output


def test_text_report_of_one_capability(env: dict[str, str]) -> None:
    code, out = run(env, "--capability", w.CAP, *WINDOW)
    assert code == 0, out
    assert "verdict: READY" in out and "\x1b[" not in out
    assert "window 2025-03-03 00:00:00Z .. 2025-03-04 06:00:00Z" in out
    assert "74.3% of 35 answered by both sides" in out and w.MASKED_IBAN_SHADOW in out
    assert "accounts.balance" not in out


def test_durations_count_back_from_until(env: dict[str, str]) -> None:
    code, out = run(env, "--capability", w.CAP, "--since", "30h", "--until", w.UNTIL.isoformat(), "--format", "json")
    assert code == 0, out
    (cap,) = json.loads(out)["capabilities"]
    assert cap["window"] == {"since": w.SINCE.isoformat(), "until": w.UNTIL.isoformat()}
    assert cap["comparisons"] == 38


def test_without_since_each_capability_is_judged_over_its_gate_window(env: dict[str, str]) -> None:
    until = w.AT["error-1"] + timedelta(minutes=1)
    code, out = run(env, "--until", until.isoformat(), "--format", "json")
    assert code == 0, out
    caps = {c["capability"]: c for c in json.loads(out)["capabilities"]}
    assert list(caps) == ["accounts.balance", "payments.create", "payments.get", "profile.update"]
    # payments.create: window_s 1h, so the gate looks back 24h and also sees the row from 1h before BASE.
    assert caps[w.CAP]["window"]["since"] == (until - timedelta(hours=24)).isoformat()
    assert caps[w.CAP]["comparisons"] == 39 and caps[w.CAP]["verdict"]["ready"] is True
    # accounts.balance keeps the default 24h window, so its gate looks back 48h.
    assert caps["accounts.balance"]["window"]["since"] == (until - timedelta(hours=48)).isoformat()
    assert caps["accounts.balance"]["comparisons"] == 3 and caps["accounts.balance"]["verdict"]["ready"] is False


def test_an_empty_window_says_so_plainly_and_exits_0(env: dict[str, str]) -> None:
    code, out = run(env, "--capability", "payments.get", *WINDOW)
    assert code == 0
    assert (
        "no comparisons for payments.get between 2025-03-03 00:00:00Z and 2025-03-04 06:00:00Z; "
        "run it in parallel mode first"
    ) in out
    assert "verdict: NOT READY" in out and "Traceback" not in out


def test_fail_if_not_ready_exits_3_only_when_something_is_not_ready(env: dict[str, str]) -> None:
    assert run(env, "--capability", w.CAP, *WINDOW, "--fail-if-not-ready")[0] == 0
    code, out = run(env, "--capability", w.CAP, "--capability", "payments.get", *WINDOW, "--fail-if-not-ready")
    assert code == 3 and "verdict: READY" in out and "verdict: NOT READY" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--capability", "loans.apply"), "unknown capability 'loans.apply' (known: accounts.balance, "),
        (("--since", "yesterday"), "--since: expected a duration like 30m, 24h, 7d or an ISO timestamp"),
        (("--since", "2025-03-05", "--until", "2025-03-04"), "must be before --until"),
    ],
)
def test_refusals_are_one_clear_line_and_exit_2(env: dict[str, str], args: tuple[str, ...], message: str) -> None:
    code, out = run(env, *args)
    assert code == 2 and message in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1


def test_missing_database_setting_is_refused(env: dict[str, str]) -> None:
    code, out = run({k: v for k, v in env.items() if k != "STRANGLER_DATABASE_URL"})
    assert code == 2 and "STRANGLER_DATABASE_URL is not set" in out


def test_out_writes_a_self_contained_html_file(env: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    code, out = run(env, *WINDOW, "--format", "html", "--out", str(target))
    assert code == 0
    assert out == f"wrote html report to {target}: 4 capabilities, 1 ready, 3 not ready\n"
    page = target.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "https://" not in page
    assert "no comparisons for payments.get between" in page


def test_out_writes_plain_text_and_csv(env: dict[str, str], tmp_path: Path) -> None:
    text, table = tmp_path / "report.txt", tmp_path / "report.csv"
    assert run(env, *WINDOW, "--out", str(text))[0] == 0
    assert "verdict: READY" in text.read_text() and "\x1b[" not in text.read_text()
    assert run(env, *WINDOW, "--format", "csv", "--out", str(table), "--capability", w.CAP)[0] == 0
    rows = list(csv.DictReader(io.StringIO(table.read_text())))
    assert [r["section"] for r in rows] == ["summary"] + ["mismatch"] * 6 + ["noise"] * 2
    assert {r["verdict"] for r in rows} == {"READY"}


def test_report_is_listed_in_the_main_help() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert "report" in result.output


def test_an_unreachable_database_is_one_line_and_exit_1(env: dict[str, str]) -> None:
    code, out = run({**env, "STRANGLER_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"})
    assert code == 1 and out.startswith("Error: cannot reach the control-plane database") and "Traceback" not in out
