"""The relay's SQL on the outbox (read past a position, record a publication, copy late events again) and its gauges."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.dialects.postgresql import psycopg

from core.db import event_outbox as outbox
from core.db import event_publications as publications
from core.db import event_requests as requests
from core.db import seconds_ago
from core.outbox import last_publication, position, published_at, unpublished


def _bigint(name: str) -> sa.Cast[int]:
    return sa.cast(sa.bindparam(name), sa.BigInteger)


# Rows of transactions still running, or younger than one that is, are left for a later read: one of those could
# commit a row behind a position already read. A long-running writer anywhere in the cluster holds the relay back
# (the backlog's age shows it); a read-only transaction does not, having no transaction id.
_horizon: sa.ColumnElement[int] = sa.literal_column(
    "(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint", sa.BigInteger
)
select_after = (
    sa.select(outbox.c.id, outbox.c.txid, outbox.c.topic, outbox.c.key, outbox.c.value)
    .where(position(outbox) > sa.tuple_(_bigint("txid"), _bigint("id")), outbox.c.txid < _horizon)
    .order_by(outbox.c.txid, outbox.c.id)
    .limit(sa.bindparam("limit"))
)

SELECT_AFTER_SQL = str(select_after.compile(dialect=psycopg.dialect()))  # for the driver's own cursor

# The whole mark: one row, however large the batch (no outbox row is written on publication).
record_publication = sa.insert(publications).values(
    upto_txid=sa.bindparam("upto_txid"), upto_id=sa.bindparam("upto_id"), rows=sa.bindparam("batch_rows")
)
resume_at = last_publication

# An event is late once `after` has passed since its latest outbox row was published, doubling with each copy up to
# 16x: a broker that lost it gets it back soon, while an applier stuck on a key (legacy down) is not flooded.
_open = requests.c.state == "accepted"  # not applied or failed yet: still needs the event on the topic
_latest = (
    sa.select(outbox.c.event_id, sa.func.max(outbox.c.id).label("id"))
    .join(requests, requests.c.event_id == outbox.c.event_id)
    .where(_open)
    .group_by(outbox.c.event_id)
    .cte("latest")
)
_last_row = outbox.alias("last_row")
_factor = sa.func.least(sa.func.power(2, _last_row.c.generation), 16)
_late = seconds_ago(sa.bindparam("after_s", type_=sa.Float) * _factor)
_with_last_row = requests.join(_latest, _latest.c.event_id == requests.c.event_id).join(
    _last_row, _last_row.c.id == _latest.c.id
)
# A key's events are sent again from its oldest late one on, so they go out again in sequence order.
_stale = (
    sa.select(requests.c.capability, requests.c.key, sa.func.min(requests.c.sequence).label("from_seq"))
    .select_from(_with_last_row)
    .where(_open, published_at(_last_row) < _late)
    .group_by(requests.c.capability, requests.c.key)
    .cte("stale")
)
_again = (
    sa.select(
        _last_row.c.id.label("last_id"), _last_row.c.generation, _last_row.c.event_id, _last_row.c.topic,
        _last_row.c.key, _last_row.c.value, requests.c.capability, requests.c.key.label("request_key"),
        requests.c.sequence,
    )
    .select_from(
        _with_last_row.join(
            _stale, sa.and_(requests.c.capability == _stale.c.capability, requests.c.key == _stale.c.key)
        )
    )
    # An event whose latest row still waits for the relay is not copied twice.
    .where(_open, requests.c.sequence >= _stale.c.from_seq, published_at(_last_row).is_not(None))
    .cte("again")
)  # fmt: skip
# A copy replaces the previous copy (published, hence no longer read by the relay); the facade's row stays.
_replaced = sa.delete(outbox).where(outbox.c.id == _again.c.last_id, _again.c.generation > 0).cte("replaced")
# Copies, not a rewind: they join the outbox as new rows (one transaction, ids in sequence order) after everything.
requeue = (
    sa.insert(outbox)
    .from_select(
        ["event_id", "topic", "key", "value", "generation"],
        sa.select(_again.c.event_id, _again.c.topic, _again.c.key, _again.c.value, _again.c.generation + 1).order_by(
            _again.c.capability, _again.c.request_key, _again.c.sequence
        ),
    )
    .returning(outbox.c.event_id)
    .add_cte(_latest, _stale, _again, _replaced)
)

backlog = sa.select(
    sa.func.count(),
    sa.func.coalesce(sa.extract("epoch", sa.func.now() - sa.func.min(outbox.c.created_at)), 0.0),
).where(unpublished(outbox))


class OutboxBacklogCollector(Collector):
    """Reports the outbox backlog and the age of its oldest unpublished row, read from the database at scrape time."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families(float("nan"), float("nan"))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with self.engine.connect() as conn:
                row = conn.execute(backlog).one()
            count, age = float(row[0]), float(row[1])
        except sa.exc.DBAPIError:
            count, age = float("nan"), float("nan")  # the scrape still answers while the database is away
        yield from self._families(count, age)

    @staticmethod
    def _families(count: float, age: float) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("strangler_outbox_backlog", "Outbox rows not yet acknowledged by Kafka", value=count)
        yield GaugeMetricFamily(
            "strangler_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row", value=age
        )
