"""Compare a table in Python when a transform has no SQL form: fetch rows and run the replicator's own conversions."""

from __future__ import annotations

from typing import Any

import psycopg

from parallel_run.reconcile.compare import Row
from parallel_run.reconcile.spec import TableSpec
from replication.plan import quote_ident
from replication.transforms import TransformError

Conn = psycopg.Connection[Any]


def legacy_rows(conn: Conn, spec: TableSpec) -> dict[str, Row]:
    """Return every legacy row converted by the mapping in Python, by key text; values are typed, not text."""
    plan = spec.plan
    schema, table = spec.source.split(".", 1)
    # concat() renders a value through its output function: the same text pgoutput sends the replicator.
    cols = ", ".join(
        f"CASE WHEN {quote_ident(c.source)} IS NULL THEN NULL ELSE concat({quote_ident(c.source)}) END"
        for c in plan.columns
    )
    rows: dict[str, Row] = {}
    key_at = [i for i, c in enumerate(plan.columns) if c in plan.key]
    for record in conn.execute(f"SELECT xmin::text, {cols} FROM ONLY {quote_ident(schema)}.{quote_ident(table)}"):
        try:
            values = tuple(
                None if raw is None else c.convert(raw.encode("utf-8"))
                for c, raw in zip(plan.columns, record[1:], strict=True)
            )
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise TransformError(f"{spec.source}: a value cannot be carried: {exc}") from None
        rows[_key(values, key_at)] = Row(values, record[0])
    return rows


def cloud_rows(conn: Conn, spec: TableSpec) -> dict[str, Row]:
    """Return every cloud row as typed values, by key text."""
    cols = ", ".join(quote_ident(c) for c in spec.columns)
    key_at = [spec.columns.index(k) for k in spec.key_columns]
    schema, table = spec.target.split(".", 1)
    return {
        _key(tuple(r), key_at): Row(tuple(r))
        for r in conn.execute(f"SELECT {cols} FROM ONLY {quote_ident(schema)}.{quote_ident(table)}")
    }


def _key(values: tuple[Any, ...], at: list[int]) -> str:
    return str(values[at[0]]) if len(at) == 1 else "(" + ",".join(str(values[i]) for i in at) + ")"
