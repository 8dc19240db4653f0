"""Render a reconciliation result as text (a rich table on a terminal, plain lines otherwise), JSON or CSV.

Every value shown passes through `parallel_run.mask` first: the output may be pasted into a ticket.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from parallel_run.mask import mask_json
from parallel_run.reconcile.compare import RowDiff
from parallel_run.reconcile.model import Result, TableResult

TEXT_ROWS = 50  # differing rows listed per table in text; JSON and CSV list them all


def mask_value(column: str, value: str | None) -> str | None:
    """Return a column's value fit to show: masked by the column's name and by what the value looks like."""
    return None if value is None else str(mask_json(f"$.{column}", value))


def mask_key(key: str) -> str:
    """Return a key fit to show: ids stay readable, an email or IBAN used as a key is masked."""
    return str(mask_json("$.id", key))


def _row(diff: RowDiff) -> dict[str, Any]:
    return {
        "kind": diff.kind,
        "key": mask_key(diff.key),
        "columns": [
            {"column": c.column, "legacy": mask_value(c.column, c.legacy), "cloud": mask_value(c.column, c.cloud)}
            for c in diff.columns
        ],
    }


def _table(t: TableResult) -> dict[str, Any]:
    return {
        "source": t.source, "target": t.target, "legacy_rows": t.legacy_rows, "cloud_rows": t.cloud_rows,
        "mode": t.mode, "note": t.note, "ranges": t.ranges, "passes": t.passes, "fetched": t.fetched,
        "missing": t.missing, "extra": t.extra, "different": t.count("different"), "unsettled": len(t.unsettled),
        "rows": [_row(d) for d in t.diffs], "unsettled_rows": [_row(d) for d in t.unsettled],
    }  # fmt: skip


def as_dict(result: Result) -> dict[str, Any]:
    """Return the result as plain data (values masked)."""
    return {
        "drift": result.drift, "lsn": result.lsn, "applied": result.applied, "waited": result.waited,
        "rounds": result.rounds, "seconds": round(result.seconds, 3), "tables": [_table(t) for t in result.tables],
    }  # fmt: skip


def to_json(result: Result) -> str:
    """Return the result as indented JSON."""
    return json.dumps(as_dict(result), indent=2) + "\n"


def to_csv(result: Result) -> str:
    """Return one CSV line per differing column (one per missing or extra row), with a header."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["table", "key", "kind", "column", "legacy", "cloud"])
    for table in result.tables:
        for state, diffs in (("", table.diffs), ("unsettled ", table.unsettled)):
            for diff in diffs:
                row = _row(diff)
                for col in row["columns"] or [{"column": "", "legacy": "", "cloud": ""}]:
                    writer.writerow([table.target, row["key"], state + diff.kind, col["column"], col["legacy"],
                                     col["cloud"]])  # fmt: skip
    return out.getvalue()


def verdict(result: Result) -> str:
    """Return the one-line conclusion."""
    where = f" at legacy position {result.lsn}" if result.lsn else ""
    if not result.drift:
        return f"no drift: the cloud store matches legacy{where} ({len(result.tables)} tables)"
    unsettled = sum(len(t.unsettled) for t in result.tables)
    extra = f", {unsettled} of them unsettled (their legacy rows kept changing)" if unsettled else ""
    return f"DRIFT: {result.drift} rows differ{where}{extra}"


def _describe(diff: RowDiff) -> str:
    row = _row(diff)
    cols = "; ".join(f"{c['column']}: {c['legacy']!r} -> {c['cloud']!r}" for c in row["columns"])
    return f"{row['kind']:<9} {row['key']}" + (f"  {cols}" if cols else "")


def to_plain(result: Result) -> str:
    """Return the text report without colours or box drawing."""
    lines = ["table                          legacy rows  cloud rows  missing  extra  different  unsettled  mode"]
    for t in result.tables:
        lines.append(
            f"{t.target:<30} {t.legacy_rows:>11,} {t.cloud_rows:>11,} {t.missing:>8} {t.extra:>6} "
            f"{t.count('different'):>10} {len(t.unsettled):>10}  {t.mode}"
        )
    for t in result.tables:
        lines += _details(t)
    lines.append(verdict(result))
    return "\n".join(lines) + "\n"


def _details(t: TableResult) -> list[str]:
    lines = [f"note: {t.target}: {t.note}"] if t.note else []
    shown = [*t.diffs, *t.unsettled]
    if shown:
        lines.append(f"{t.target}:")
        lines += [f"  {_describe(d)}" + ("  (unsettled)" if d in t.unsettled else "") for d in shown[:TEXT_ROWS]]
        if len(shown) > TEXT_ROWS:
            lines.append(f"  ... and {len(shown) - TEXT_ROWS} more (--format json or csv lists them all)")
    return lines


def print_rich(result: Result, console: Any) -> None:
    """Print the text report as rich tables on a terminal console."""
    from rich.table import Table

    table = Table(title="reconcile: legacy vs cloud store")
    for name in ("table", "legacy rows", "cloud rows", "missing", "extra", "different", "unsettled", "mode"):
        table.add_column(name, justify="left" if name in ("table", "mode") else "right")
    for t in result.tables:
        table.add_row(t.target, f"{t.legacy_rows:,}", f"{t.cloud_rows:,}", str(t.missing), str(t.extra),
                      str(t.count("different")), str(len(t.unsettled)), t.mode)  # fmt: skip
    console.print(table)
    for t in result.tables:
        for line in _details(t):
            console.print(line, markup=False, highlight=False)
    console.print(verdict(result), style="bold green" if not result.drift else "bold red")
