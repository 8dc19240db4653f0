"""Retention of settled events: an update applied longer ago than the retention leaves the outbox and the status table.

Whatever their age, these stay: updates not applied yet; failed ones (operators replay them from the dead letters);
and applied ones that follow a failed one of the same key (a replay lists them before it overwrites their values). An
applied event's copy that still waits for the relay goes with it: nobody needs it any more. The key's checkpoint
(`event_key_sequences`) is never pruned, and the applier refuses an event id it does not know (dead letter), so a
pruned event delivered again is never applied twice.

Rounds walk the outbox in id order (its primary key: no index of its own is needed), one batch per statement, so the
relay can prune between its passes without holding up publication. At the end of a round the relay's publication log
loses the entries below every remaining outbox row (the last one always stays: the relay resumes from it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from core.db import event_outbox, event_publications, event_requests, seconds_ago

_cutoff = seconds_ago(sa.bindparam("keep_s", type_=sa.Float))

_window = (
    sa.select(event_outbox.c.id, event_outbox.c.event_id, (event_outbox.c.created_at < _cutoff).label("old"))
    .where(event_outbox.c.id > sa.bindparam("after"))
    .order_by(event_outbox.c.id)
    .limit(sa.bindparam("limit"))
    .cte("window")
)
_failed_before = event_requests.alias("failed_before")
_victims = (
    sa.select(event_requests.c.request_id, event_requests.c.event_id)
    .where(
        event_requests.c.event_id.in_(sa.select(_window.c.event_id).where(_window.c.old)),
        event_requests.c.state == "applied",
        event_requests.c.applied_at < _cutoff,
        ~sa.exists().where(
            _failed_before.c.capability == event_requests.c.capability,
            _failed_before.c.key == event_requests.c.key,
            _failed_before.c.sequence < event_requests.c.sequence,
            _failed_before.c.state == "failed",
        ),
    )
    .with_for_update(of=event_requests, skip_locked=True)  # a row another session is changing waits for a later round
    .cte("victims")
)
_gone_envelopes = (
    sa.delete(event_outbox).where(event_outbox.c.event_id == _victims.c.event_id).returning(event_outbox.c.id)
).cte("gone_envelopes")
_gone = (
    sa.delete(event_requests)
    .where(event_requests.c.request_id == _victims.c.request_id)
    .returning(event_requests.c.request_id)
    .cte("gone")
)
# One statement, hence atomic on its own: a request never outlives its envelope or the other way round.
PRUNE_BATCH = sa.select(
    sa.select(sa.func.max(_window.c.id)).scalar_subquery().label("last_id"),
    sa.select(sa.func.count()).select_from(_window).scalar_subquery().label("seen"),
    sa.select(sa.func.count()).select_from(_window).where(_window.c.old).scalar_subquery().label("old"),
    sa.select(sa.func.count()).select_from(_gone).scalar_subquery().label("pruned"),
).add_cte(_gone_envelopes)


# A publication is read only as the first one at or past some outbox row's position, so those below the oldest
# remaining row are of no use; the last one stays whatever its position, as the relay resumes from it.
_log = event_publications
_first = sa.select().order_by(event_outbox.c.txid, event_outbox.c.id).limit(1)
PRUNE_PUBLICATIONS = sa.delete(_log).where(
    _log.c.id < sa.select(sa.func.max(_log.c.id)).scalar_subquery(),
    sa.or_(
        ~sa.exists().select_from(event_outbox),
        sa.tuple_(_log.c.upto_txid, _log.c.upto_id)
        < sa.tuple_(
            _first.add_columns(event_outbox.c.txid).scalar_subquery(),
            _first.add_columns(event_outbox.c.id).scalar_subquery(),
        ),
    ),
)


@dataclass(frozen=True)
class Batch:
    """What one batch of a round did: events pruned, and whether the round reached its end."""

    pruned: int
    round_done: bool


class Retention:
    """Prune events applied more than `keep_s` ago, a batch at a time, in rounds every `interval_s`."""

    def __init__(
        self,
        keep_s: float,
        *,
        batch_size: int = 500,
        interval_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if keep_s <= 0:
            raise ValueError("keep_s must be positive (a retention of 0 keeps events forever: use no Retention)")
        self.keep_s = keep_s
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.clock = clock
        self._after = 0  # the outbox id this round has reached
        self._next_round = 0.0

    def step(self, conn: sa.Connection) -> int:
        """Prune one batch if a round is under way or due; return how many events left."""
        if self.clock() < self._next_round:
            return 0
        batch = self.batch(conn)
        if batch.round_done:
            self._after, self._next_round = 0, self.clock() + self.interval_s
            conn.execute(PRUNE_PUBLICATIONS)
        return batch.pruned

    def prune_all(self, conn: sa.Connection) -> int:
        """Run one whole round now; return how many events left."""
        self._after, pruned = 0, 0
        while not (batch := self.batch(conn)).round_done:
            pruned += batch.pruned
        self._after = 0
        conn.execute(PRUNE_PUBLICATIONS)
        return pruned + batch.pruned

    def batch(self, conn: sa.Connection) -> Batch:
        """Prune among the next `batch_size` outbox rows of this round (one statement); return what it did."""
        params = {"after": self._after, "limit": self.batch_size, "keep_s": float(self.keep_s)}
        row = conn.execute(PRUNE_BATCH, params).one()
        if row.last_id is not None:
            self._after = int(row.last_id)
        # Rows are in id order, hence in order of acceptance: past the first young one, nothing is old enough.
        done = row.seen < self.batch_size or row.old < row.seen
        return Batch(int(row.pruned), done)
