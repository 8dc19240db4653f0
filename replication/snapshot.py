"""The initial snapshot: copy the mapped tables inside the slot's exported snapshot, in page-range chunks.

Each chunk is `COPY (SELECT <mapped columns, transforms in SQL> FROM ONLY table WHERE ctid in a page range) TO
STDOUT` on the source, piped block by block into `COPY target FROM STDIN`. All tables and the checkpoint (the slot's
consistent point) are committed in one target transaction: a crash leaves the target as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from replication.applier import Applier, Checkpoint
from replication.plan import TablePlan, quote_ident
from replication.source import SESSION_OPTIONS, Conninfo

CHUNK_PAGES = 2048  # 16 MB of heap per COPY


@dataclass(frozen=True)
class SnapshotProgress:
    """Callbacks for a progress display: a table starts (with its page count), pages and rows are done."""

    table_started: Callable[[str, int], None] = lambda table, pages: None
    advanced: Callable[[str, int, int], None] = lambda table, pages, rows: None
    table_done: Callable[[str, int], None] = lambda table, rows: None

    def __add__(self, other: SnapshotProgress) -> SnapshotProgress:
        """Return progress callbacks that call both."""

        def started(table: str, pages: int) -> None:
            self.table_started(table, pages)
            other.table_started(table, pages)

        def advanced(table: str, pages: int, rows: int) -> None:
            self.advanced(table, pages, rows)
            other.advanced(table, pages, rows)

        def done(table: str, rows: int) -> None:
            self.table_done(table, rows)
            other.table_done(table, rows)

        return SnapshotProgress(started, advanced, done)


def _blocks(copy: psycopg.Copy, counter: list[int]) -> Iterator[bytes]:
    for block in copy:
        counter[0] += bytes(block).count(b"\n")
        yield block  # type: ignore[misc]


def copy_snapshot(
    source: Conninfo,
    snapshot_name: str | None,
    plans: Sequence[TablePlan],
    applier: Applier,
    checkpoint: Checkpoint,
    progress: SnapshotProgress | None = None,
    chunk_pages: int = CHUNK_PAGES,
) -> dict[str, int]:
    """Replace every planned target table with the source's rows as of the snapshot; commit with `checkpoint`."""
    show = progress or SnapshotProgress()
    counts: dict[str, int] = {}
    kwargs = source.kwargs(options=SESSION_OPTIONS, application_name="strangler-snapshot")
    with psycopg.connect(**kwargs, autocommit=True) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        if snapshot_name:
            conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot_name}'")
        applier.truncate(plans)
        for plan in plans:
            counts[plan.source] = _copy_table(conn, plan, applier, show, chunk_pages)
        conn.execute("ROLLBACK")
    applier.commit(checkpoint)
    return counts


def _copy_table(
    conn: psycopg.Connection[Any], plan: TablePlan, applier: Applier, show: SnapshotProgress, chunk_pages: int
) -> int:
    schema, table = plan.source.split(".", 1)
    name = f"{quote_ident(schema)}.{quote_ident(table)}"
    size = conn.execute(
        "SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::int", (name,)
    ).fetchone()[0]  # type: ignore[index]
    pages = max(1, int(size))
    show.table_started(plan.source, pages)
    rows = 0
    for start in range(0, pages, chunk_pages):
        last = start + chunk_pages >= pages
        # The last chunk is open-ended: pages added since the size was read hold nothing this snapshot can see.
        upper = "" if last else f" AND ctid < '({start + chunk_pages},0)'::tid"
        sql = f"COPY (SELECT {plan.select_sql} FROM ONLY {name} WHERE ctid >= '({start},0)'::tid{upper}) TO STDOUT"
        counter = [0]
        with conn.cursor() as cur, cur.copy(sql) as copy:
            applier.copy_text(plan, _blocks(copy, counter))
        rows += counter[0]
        show.advanced(plan.source, min(chunk_pages, pages - start), counter[0])
    show.table_done(plan.source, rows)
    return rows
