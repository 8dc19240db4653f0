"""The queries of a reconciliation, the same on both sides: sizes, range checksums, quantiles and row fetches.

Each function runs one statement on one side's connection (inside that side's snapshot) with that side's
`SideSQL`; the legacy side's values carry the mapping's transforms, so the database does the work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from parallel_run.reconcile.bisect import Cut, Key, Sums, even_buckets
from parallel_run.reconcile.compare import Row
from parallel_run.reconcile.spec import SideSQL

Conn = psycopg.Connection[Any]


def _array_type(kind: str) -> str:
    return "bigint[]" if kind == "int" else "bytea[]"


def _where(side: SideSQL, cut: Cut | None, part: str = "") -> tuple[str, list[Any]]:
    """Return the WHERE clause (with its parameters) of the rows in `cut` within the page slice `part`."""
    conds, params = [part] if part else [], []
    if cut is not None and not cut.everything:
        conds.append(f"width_bucket({side.key_raw}, %s::{_array_type(side.kind)}) = ANY(%s::int[])")
        params = [list(cut.bounds), list(cut.buckets)]
    return (f" WHERE {' AND '.join(conds)}" if conds else ""), params


def estimate_rows(conn: Conn, side: SideSQL) -> int:
    """Return the planner's row estimate of the table, or its exact count when it was never analysed."""
    row = conn.execute(
        "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", (side.relation.removeprefix("ONLY "),)
    ).fetchone()
    if row is None or row[0] < 0:
        row = conn.execute(f"SELECT count(*) FROM {side.relation}").fetchone()
    return int(row[0]) if row else 0


def key_span(conn: Conn, side: SideSQL) -> tuple[Key, Key]:
    """Return the smallest and largest key (None, None when empty); on the cloud side an index answers it."""
    row = conn.execute(f"SELECT min({side.key_raw}), max({side.key_raw}) FROM {side.relation}").fetchone()
    return (row[0], row[1]) if row else (None, None)


def bucket_sums(
    conn: Conn, side: SideSQL, part: str = "", *, bounds: Sequence[Key], cut: Cut | None
) -> dict[int, Sums]:
    """Return count, hash sum and key span per bucket of `width_bucket(key, bounds)`, over the rows in `cut`.

    `part` restricts the read to one page slice (see `slices`); `merge_sums` adds the slices' answers up.
    """
    where, params = _where(side, cut, part)
    even = even_buckets(bounds) if side.kind == "int" else None
    bucket = even or (f"width_bucket(k, %s::{_array_type(side.kind)})" if bounds else "0")
    # bytea has no min/max: its hex text in the C collation orders the same way.
    span = "k" if side.kind == "int" else "encode(k, 'hex') COLLATE \"C\""
    sql = (
        f"SELECT {bucket} AS b, count(*), coalesce(sum(h), 0), min({span}), max({span}) "
        f"FROM (SELECT {side.key} AS k, {side.row_hash} AS h FROM {side.inner(where)}) x GROUP BY 1"
    )
    rows = conn.execute(sql, ([list(bounds)] if bounds and not even else []) + params).fetchall()  # textual order
    if side.kind != "int":
        rows = [(b, n, total, bytes.fromhex(low), bytes.fromhex(high)) for b, n, total, low, high in rows]
    return {int(b): Sums(int(n), int(total), low, high) for b, n, total, low, high in rows}


def merge_sums(parts: Sequence[dict[int, Sums]]) -> dict[int, Sums]:
    """Return the per-bucket sums of disjoint row sets added up: counts and hashes summed, key spans widened."""
    out: dict[int, Sums] = {}
    for sums in parts:
        for b, s in sums.items():
            o = out.get(b)
            out[b] = s if o is None else Sums(o.count + s.count, o.total + s.total, min(o.low, s.low),
                                              max(o.high, s.high))  # fmt: skip
    return out


def merge_rows(parts: Sequence[dict[str, Row]]) -> dict[str, Row]:
    """Return the rows of disjoint page slices as one mapping."""
    out: dict[str, Row] = {}
    for rows in parts:
        out.update(rows)
    return out


def quantiles(conn: Conn, side: SideSQL, parts: int, cut: Cut | None, sample_pct: float = 100) -> dict[int, list[Key]]:
    """Return, per bucket of `cut` (or bucket 0 for everything), keys at `parts` evenly spaced quantiles.

    Below 100, `sample_pct` reads a row sample: bounds only need to cut the key space roughly evenly.
    """
    fractions = [i / parts for i in range(parts + 1)]
    where, params = _where(side, cut)
    everything = cut is None or cut.everything
    bucket = "0" if everything else f"width_bucket(k, %s::{_array_type(side.kind)})"
    sample = f" TABLESAMPLE BERNOULLI ({sample_pct:.6f})" if sample_pct < 100 else ""
    sql = (
        f"SELECT {bucket} AS b, percentile_disc(%s::float8[]) WITHIN GROUP (ORDER BY k) "
        f"FROM (SELECT {side.key_raw} AS k FROM {side.relation}{sample}{where}) x GROUP BY 1"
    )
    head = [] if everything or cut is None else [list(cut.bounds)]
    rows = conn.execute(sql, [*head, fractions, *params]).fetchall()  # in textual order
    return {int(b): [bytes(k) for k in keys if k is not None] for b, keys in rows}


def _select(side: SideSQL, where: str) -> str:
    return f"SELECT {side.key_text}, v, {', '.join(side.texts)} FROM {side.inner(where)}"


def _rows(cursor: Iterable[tuple[Any, ...]]) -> dict[str, Row]:
    return {r[0]: Row(tuple(r[2:]), r[1]) for r in cursor}


def fetch_cut(conn: Conn, side: SideSQL, part: str = "", *, cut: Cut | None) -> dict[str, Row]:
    """Return the rows in `cut` (within page slice `part`) by key text, columns as canonical text."""
    where, params = _where(side, cut, part)
    return _rows(conn.execute(_select(side, where), params))


def fetch_keys(conn: Conn, side: SideSQL, keys: Sequence[str]) -> dict[str, Row]:
    """Return the rows with these key texts (absent keys are simply not in the answer)."""
    if not keys:
        return {}
    where, params = side.match_keys(list(keys))
    return _rows(conn.execute(_select(side, f" WHERE {where}"), params))
