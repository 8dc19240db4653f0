"""Read one side's table on several connections in one snapshot: each scans its own range of heap pages.

A checksum pass is CPU-bound per row (the legacy side also runs the mapping's transforms), and one query uses one
core. The first connection of a side opens the REPEATABLE READ snapshot (on legacy: the one the compared WAL
position is taken in); the others import it with `SET TRANSACTION SNAPSHOT`, so every slice sees exactly the rows
the first connection sees, and the union of the slices' page ranges is the whole table.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

Conn = psycopg.Connection[Any]
SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
MIN_PAGES = 1024  # below ~8 MB a table is read in one query: more would cost more than it saves
_SLICEABLE = ("r", "m")  # tables and materialised views have heap pages a TID range scan can split


def share_snapshot(main: Conn, others: list[Conn]) -> None:
    """Open a transaction on each of `others` in the snapshot of `main`'s open REPEATABLE READ transaction."""
    if not others:
        return
    row = main.execute("SELECT pg_export_snapshot()").fetchone()
    assert row is not None
    for conn in others:
        conn.execute(SNAPSHOT)
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(row[0])))


def page_slices(conn: Conn, relation: str, parts: int) -> list[str]:
    """Return `ctid` conditions cutting the relation into up to `parts` page ranges that cover every row.

    The last range is open-ended, so pages added after the size was read are still covered. A relation that is
    small, or not a plain table, gets one empty condition: read it whole.
    """
    if parts < 2:
        return [""]
    row = conn.execute(
        "SELECT relkind::text, pg_relation_size(oid) / current_setting('block_size')::bigint "
        "FROM pg_class WHERE oid = %s::regclass",
        (relation.removeprefix("ONLY "),),
    ).fetchone()
    if row is None or row[0] not in _SLICEABLE or row[1] < MIN_PAGES:
        return [""]
    cuts = [row[1] * i // parts for i in range(1, parts)]
    lows = [None, *cuts]
    highs = [*cuts, None]
    return [
        " AND ".join(
            ([f"ctid >= '({low},0)'::tid"] if low is not None else [])
            + ([f"ctid < '({high},0)'::tid"] if high is not None else [])
        )
        for low, high in zip(lows, highs, strict=True)
    ]
