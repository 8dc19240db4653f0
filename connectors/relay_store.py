"""The relay's SQL on the outbox and its queue (read pending, mark published, requeue stale) and its backlog gauges."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.dialects.postgresql import ARRAY, insert, psycopg

from core.db import event_outbox as outbox
from core.db import event_outbox_pending as pending
from core.db import event_requests as requests
from core.db import seconds_ago

OPEN = ("accepted", "published")  # event states that still need the event on the topic ("published": older rows)

select_unpublished = (
    sa.select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.value)
    .select_from(pending.join(outbox, outbox.c.id == pending.c.id))
    # Both sides bounded: a merge join would otherwise scan the outbox from its first row for every batch.
    .where(pending.c.id > sa.bindparam("after"), outbox.c.id > sa.bindparam("after"))
    .order_by(pending.c.id)
    .limit(sa.bindparam("limit"))
)

SELECT_UNPUBLISHED_SQL = str(select_unpublished.compile(dialect=psycopg.dialect()))  # for the driver's own cursor

# One statement: the rows leave the queue (a delete, no index work) and their publication is noted on the outbox row
# (columns no index covers: a heap-only update). The requests are not touched: their status reads the outbox row.
# The ids travel as one array literal ("{1,2,3}"): psycopg's per-element array dumping costs more than the update.
_ids = sa.cast(sa.bindparam("ids", type_=sa.Text), ARRAY(sa.BigInteger))
mark_published = (
    sa.update(outbox)
    .where(outbox.c.id == sa.any_(_ids))
    .values(
        published_at=sa.func.coalesce(outbox.c.published_at, sa.func.now()),
        last_published_at=sa.func.now(),
        publish_count=outbox.c.publish_count + 1,
    )
    .add_cte(sa.delete(pending).where(pending.c.id == sa.any_(_ids)).cte("sent"))
)

# An event is late once `after` has passed since its last publication, doubling with each publication up to 16x: a
# broker that lost it gets it back soon, while an applier stuck on a key (legacy down) is not flooded with copies.
_factor = sa.func.least(sa.func.power(2, outbox.c.publish_count - 1), 16)
_late = seconds_ago(sa.bindparam("after_s", type_=sa.Float) * _factor)
_open = requests.c.state.in_(OPEN)
# A key's events are queued again from its oldest late one on, so they go out again in sequence order.
_stale = (
    sa.select(requests.c.capability, requests.c.key, sa.func.min(requests.c.sequence).label("from_seq"))
    .join(outbox, outbox.c.event_id == requests.c.event_id)
    .where(_open, outbox.c.last_published_at < _late)
    .group_by(requests.c.capability, requests.c.key)
    .cte("stale")
)
_queued = (
    insert(pending)
    .from_select(
        ["id"],
        sa.select(outbox.c.id)
        .join(requests, outbox.c.event_id == requests.c.event_id)
        .join(_stale, sa.and_(requests.c.capability == _stale.c.capability, requests.c.key == _stale.c.key))
        .where(_open, requests.c.sequence >= _stale.c.from_seq),
    )
    .on_conflict_do_nothing()  # still queued (never sent, or requeued earlier): one row per outbox row
    .returning(pending.c.id)
    .cte("queued")
)
requeue = sa.select(outbox.c.event_id).join(_queued, _queued.c.id == outbox.c.id).order_by(outbox.c.id)

backlog = sa.select(
    sa.func.count(),
    sa.func.coalesce(sa.extract("epoch", sa.func.now() - sa.func.min(outbox.c.created_at)), 0.0),
).select_from(pending.join(outbox, outbox.c.id == pending.c.id))


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
