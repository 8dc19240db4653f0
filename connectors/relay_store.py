"""The relay's SQL on the outbox (read unpublished, mark published, requeue stale) and its backlog gauges."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.dialects.postgresql import ARRAY

from core.db import event_outbox as outbox
from core.db import event_requests as requests

PENDING = ("accepted", "published")  # event states that still need the event on the topic

select_unpublished = (
    sa.select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.value, outbox.c.event_id)
    .where(outbox.c.published_at.is_(None), outbox.c.id > sa.bindparam("after"))
    .order_by(outbox.c.id)
    .limit(sa.bindparam("limit"))
)

# Rows and their requests (accepted → published, never back from applied/failed) change in one statement.
_marked = (
    sa.update(outbox)
    .where(outbox.c.id == sa.any_(sa.bindparam("ids", type_=ARRAY(sa.BigInteger))))
    .values(published_at=sa.func.now(), publish_count=outbox.c.publish_count + 1)
    .cte("marked")
)
mark_published = (
    sa.update(requests)
    .where(requests.c.event_id == sa.any_(sa.bindparam("event_ids", type_=ARRAY(sa.Text))))
    .where(requests.c.state == "accepted")
    .values(state="published", published_at=sa.func.now())
    .add_cte(_marked)
)

# An event is late once `after` has passed since its last publication, doubling with each publication up to 16x: a
# broker that lost it gets it back soon, while an applier stuck on a key (legacy down) is not flooded with copies.
_factor = sa.func.least(sa.func.power(2, outbox.c.publish_count - 1), 16)
_late = sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, sa.bindparam("after_s", type_=sa.Float) * _factor)
# A key's events are queued again from its oldest late one on, so they go out again in sequence order.
_stale = (
    sa.select(requests.c.capability, requests.c.key, sa.func.min(requests.c.sequence).label("from_seq"))
    .join(outbox, outbox.c.event_id == requests.c.event_id)
    .where(
        requests.c.state.in_(PENDING),
        outbox.c.published_at < _late,
    )
    .group_by(requests.c.capability, requests.c.key)
    .cte("stale")
)
requeue = (
    sa.update(outbox)
    .where(
        outbox.c.event_id == requests.c.event_id,
        requests.c.capability == _stale.c.capability,
        requests.c.key == _stale.c.key,
        requests.c.sequence >= _stale.c.from_seq,
        requests.c.state.in_(PENDING),
        outbox.c.published_at.is_not(None),
    )
    .values(published_at=None)
    .returning(outbox.c.event_id)
)

backlog = sa.select(
    sa.func.count(),
    sa.func.coalesce(sa.extract("epoch", sa.func.now() - sa.func.min(outbox.c.created_at)), 0.0),
).where(outbox.c.published_at.is_(None))


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
