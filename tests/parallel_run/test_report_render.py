"""The renderers: the same judged report as text, self-contained HTML, JSON and CSV, masked values untouched."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from html import escape
from html.parser import HTMLParser

import pytest

from core.db import make_engine
from core.migrate import create_schema
from core.pgcluster import PgCluster
from core.rules import ReadinessSpec
from parallel_run.report.model import CapabilityReport, PathExample, PathMismatch
from parallel_run.report.query import build_reports
from parallel_run.report.render_csv import COLUMNS, render_csv
from parallel_run.report.render_html import render_html
from parallel_run.report.render_json import render_json
from parallel_run.report.render_text import render_text
from parallel_run.report.verdict import Judged, judge
from tests.parallel_run import report_world as w

SPEC = ReadinessSpec(min_comparisons=1000, min_match_rate=0.999, max_critical_mismatches=0, window_s=86400)
GENERATED = datetime(2025, 3, 5, 12, tzinfo=UTC)
EMPTY_SINCE = w.BASE + timedelta(days=10)
FAILING = (
    "35 comparisons (not counting 3 shadow failures), at least 1000 needed",
    "match rate 74.3% below 99.9%",
    "3 critical-field mismatches ($.amount, $.status)",
    "observed for 18h 30m, at least 24h needed",
)
EMPTY_MESSAGE = (
    "no comparisons for payments.get between 2025-03-13 00:00:00Z and 2025-03-13 01:00:00Z; "
    "run it in parallel mode first"
)


@pytest.fixture(scope="module")
def entries(pg_cluster: PgCluster) -> list[Judged]:
    engine = make_engine(pg_cluster.create_database("report_render"), pool_size=1)
    create_schema(engine)
    w.seed(engine)
    windows = [(w.CAP, w.SINCE, w.UNTIL), ("payments.get", EMPTY_SINCE, EMPTY_SINCE + timedelta(hours=1))]
    return [judge(r, SPEC) for r in build_reports(engine, windows)]


def test_the_verdict_and_its_failing_criteria_come_first(entries: list[Judged]) -> None:
    assert entries[0].verdict.failing == FAILING
    text = render_text(entries)
    head = text[: text.index("summary")]
    assert "verdict: NOT READY" in head
    assert all(reason in head for reason in FAILING)


def test_plain_text_has_every_figure_and_no_terminal_codes(entries: list[Judged]) -> None:
    text = render_text(entries, width=160)
    assert "\x1b[" not in text
    for figure in (
        "legacy (primary) vs cloud (shadow)", "74.3% of 35 answered by both sides", "1 / 2 (not in the match rate)",
        "not_sampled 11, queue_full 7", "2025-03-03 01:00:00Z / 2025-03-03 19:30:00Z", "18h 30m",
        "28.5 ms", "2.6% (1)", "13.2% (5)", "1 (noisy, still counted)", "critical: still counted",
    ):  # fmt: skip
        assert figure in text, figure
    for path in ("$.fee", "$.amount", "$.creditor.iban", "$.memo", "$.status", "$.created_at"):
        assert path in text
    assert w.MASKED_IBAN_PRIMARY in text and w.MASKED_IBAN_SHADOW in text and w.MARKUP in text
    assert EMPTY_MESSAGE in text


def test_a_terminal_gets_colour_and_the_same_words(entries: list[Judged]) -> None:
    text = render_text(entries, terminal=True, width=160)
    assert "\x1b[" in text and "NOT READY" in text and EMPTY_MESSAGE in text and "$.creditor.iban" in text


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [v for k, v in attrs if k in {"src", "href", "xlink:href", "data"} and v and not v.startswith("#")]


def test_html_is_one_self_contained_page_with_charts(entries: list[Judged]) -> None:
    page = render_html(entries, GENERATED)
    parser = _Page()
    parser.feed(page)
    parser.close()
    assert "http://" not in page and "https://" not in page and "url(" not in page
    assert parser.urls == []  # only in-page anchors
    assert "script" not in parser.tags and "link" not in parser.tags and "img" not in parser.tags
    assert parser.tags.count("svg") == 2  # latency and mismatches by path; the empty capability has none
    assert parser.tags.count("rect") == 4 + 6
    assert "<style>" in page


def test_html_shows_the_verdict_figures_and_escapes_every_value(entries: list[Judged]) -> None:
    page = render_html(entries, GENERATED)
    assert page.count('class="verdict not-ready"') == 4  # overview and section, for both capabilities
    assert all(escape(reason) in page for reason in FAILING)
    assert escape(w.MARKUP) in page and w.MARKUP not in page
    assert escape(w.MASKED_IBAN_PRIMARY) in page and escape(w.MASKED_IBAN_SHADOW) in page
    assert escape(EMPTY_MESSAGE) in page
    assert "2025-03-05 12:00:00Z" in page
    for label in ("p50 legacy", "p99 cloud", "28.5 ms", "critical: still counted", "$.creditor.iban"):
        assert label in page


def test_json_carries_every_figure(entries: list[Judged]) -> None:
    doc = json.loads(render_json(entries, GENERATED))
    assert doc["generated_at"] == GENERATED.isoformat() and doc["ready"] is False
    cap, empty = doc["capabilities"]
    assert cap["verdict"] == {"ready": False, "failing": list(FAILING)}
    assert cap["readiness"] == {
        "min_comparisons": 1000, "min_match_rate": 0.999, "max_critical_mismatches": 0, "window_s": 86400
    }  # fmt: skip
    assert {k: cap[k] for k in ("comparisons", "compared", "matches", "mismatches", "critical_mismatches")} == {
        "comparisons": 38, "compared": 35, "matches": 26, "mismatches": 9, "critical_mismatches": 3
    }  # fmt: skip
    assert cap["match_rate"] == pytest.approx(26 / 35)
    assert (cap["shadow_errors"], cap["shadow_timeouts"], cap["errors"]) == (1, 2, {"primary": 1, "shadow": 5})
    assert cap["latency_ms"]["primary"]["p50"] == pytest.approx(28.5)
    assert cap["skipped"] == {"not_sampled": 11, "queue_full": 7}
    assert (cap["first_at"], cap["observed_s"]) == ("2025-03-03T01:00:00+00:00", 18.5 * 3600)
    fee = cap["mismatches_by_path"][0]
    assert (fee["path"], fee["count"], fee["critical_count"], fee["noisy"]) == ("$.fee", 4, 0, False)
    assert fee["examples"][0] == {
        "request_id": "fee-4", "at": w.AT["fee-4"].isoformat(), "primary": '"0.50"', "shadow": '"0.04"'
    }  # fmt: skip
    memo = next(p for p in cap["mismatches_by_path"] if p["path"] == "$.memo")
    assert memo["examples"][0]["primary"] is None and memo["examples"][0]["shadow"] == w.MARKUP
    assert [(n["path"], n["in_window"], n["critical"]) for n in cap["noise"]] == [
        ("$.created_at", 6, False), ("$.status", 1, True)
    ]  # fmt: skip
    assert empty["empty"] is True and empty["comparisons"] == 0 and empty["match_rate"] is None


def test_csv_has_a_summary_row_then_one_row_per_path(entries: list[Judged]) -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(entries))))
    assert tuple(rows[0]) == COLUMNS
    assert all(None not in row and None not in row.values() for row in rows)  # no row longer or shorter
    shape = [(r["capability"], r["section"], r["path"]) for r in rows]
    assert shape == [
        (w.CAP, "summary", ""),
        *((w.CAP, "mismatch", p) for p in ("$.fee", "$.amount", "$.creditor.iban", "$.memo", "$.status", "status")),
        (w.CAP, "noise", "$.created_at"),
        (w.CAP, "noise", "$.status"),
        ("payments.get", "summary", ""),
    ]
    assert all(r["verdict"] == "NOT READY" and r["comparisons"] == "38" for r in rows[:-1])
    status = rows[5]
    assert (status["count"], status["critical_count"], status["noisy"]) == ("1", "1", "true")
    iban = rows[3]
    assert (iban["example_primary"], iban["example_shadow"]) == (w.MASKED_IBAN_PRIMARY, w.MASKED_IBAN_SHADOW)
    created = rows[7]
    assert (created["count"], created["noise_seen"], created["noisy"]) == ("6", "40", "true")
    assert rows[-1]["comparisons"] == "0" and rows[-1]["match_rate"] == ""


def test_csv_cells_never_start_a_spreadsheet_formula() -> None:
    at = datetime(2025, 3, 3, tzinfo=UTC)
    path = PathMismatch("=HYPERLINK(x)", ("value",), 1, 0, at, at, (PathExample("r", at, "@SUM(1)", "-5"),))
    report = CapabilityReport("c", at, at, comparisons=1, mismatches=1, paths=(path,))
    (_, row) = list(csv.DictReader(io.StringIO(render_csv([judge(report, SPEC)]))))
    assert (row["path"], row["example_primary"], row["example_shadow"]) == ("'=HYPERLINK(x)", "'@SUM(1)", "-5")
