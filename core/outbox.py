"""The outbox's positions in SQL: where the relay has published up to, and when a given outbox row was published.

A position is (txid, id). The relay publishes rows in position order and records each acknowledged batch as one row
of `event_publications`, so the last of those is where it resumes, and a row was published at the first publication
whose position is at or past its own.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from core.db import event_outbox, event_publications

_log = event_publications


def position(row: sa.FromClause) -> sa.Tuple:
    """Return `row`'s (txid, id) position, for comparisons."""
    return sa.tuple_(row.c.txid, row.c.id)


def published_at(row: sa.FromClause) -> sa.ScalarSelect[Any]:
    """Return when the relay first published up to `row`'s position, null while it has not (one index probe)."""
    return (
        sa.select(_log.c.at)
        .where(sa.tuple_(_log.c.upto_txid, _log.c.upto_id) >= position(row))
        .order_by(_log.c.upto_txid, _log.c.upto_id)
        .limit(1)
        .scalar_subquery()
    )


# Where the relay resumes: the last publication's position, or none before the first.
last_publication = (
    sa.select(_log.c.upto_txid, _log.c.upto_id).order_by(_log.c.upto_txid.desc(), _log.c.upto_id.desc()).limit(1)
)


def _last(column: sa.Column[int]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(last_publication.with_only_columns(column).scalar_subquery(), 0)


def unpublished(row: sa.FromClause = event_outbox) -> sa.ColumnElement[bool]:
    """Return the condition that `row` lies past the relay's last publication (every row, before the first one)."""
    # Two uncorrelated subqueries, each run once: the comparison stays an index range on the outbox's position.
    return position(row) > sa.tuple_(_last(_log.c.upto_txid), _last(_log.c.upto_id))
