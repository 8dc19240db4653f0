"""Replication lag: what the running replicator publishes to the control plane, and what `replicate status` shows."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from core.db import make_engine, replication_status
from core.migrate import create_schema
from replication.pg_applier import read_checkpoint
from replication.pgoutput import lsn_to_str
from replication.sinks import Sink, Stats
from replication.source import Conninfo, SetupError, connect, current_lsn, slot_info

log = logging.getLogger("strangler.replication")


class StatusWriter:
    """Upsert one slot's row of `strangler.replication_status` in the control-plane database."""

    def __init__(self, control_url: str) -> None:
        self.engine = make_engine(control_url, pool_size=1)
        create_schema(self.engine)

    def write(self, slot: str, stats: Stats) -> None:
        """Record the replicator's counters as the slot's current status (updated_at = now)."""
        values = {
            "slot": slot,
            "applied_lsn": lsn_to_str(stats.applied_lsn),
            "source_lsn": lsn_to_str(stats.source_lsn),
            "lag_bytes": stats.lag_bytes,
            "lag_seconds": round(stats.lag_seconds(), 3),
            "updated_at": sa.func.now(),
        }
        stmt = insert(replication_status).values(**values)
        stmt = stmt.on_conflict_do_update(index_elements=["slot"], set_={k: stmt.excluded[k] for k in values})
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def close(self) -> None:
        self.engine.dispose()


class StatusSink(Sink):
    """Write the slot's lag to the control plane on every tick; an unreachable control plane only logs."""

    def __init__(self, writer: StatusWriter, slot: str) -> None:
        self.writer, self.slot, self._failing = writer, slot, False

    def tick(self, stats: Stats) -> None:
        try:
            self.writer.write(self.slot, stats)
            self._failing = False
        except sa.exc.SQLAlchemyError as exc:
            if not self._failing:
                log.warning("cannot write replication status to the control plane: %s", str(exc).splitlines()[0])
            self._failing = True

    def close(self) -> None:
        self.writer.close()


@dataclass(frozen=True)
class StatusReport:
    """Everything `strangler replicate status` shows for one slot."""

    slot: str
    exists: bool
    active_pid: int | None
    confirmed_lsn: str | None
    applied_lsn: str | None
    source_lsn: str
    lag_bytes: int | None
    lag_seconds: float | None
    retained_wal_bytes: int | None
    wal_status: str | None
    last_commit_time: str | None
    reported_at: str | None  # when the running replicator last wrote its status (control plane), if known

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_status(source: Conninfo, target: Conninfo, slot: str, control_url: str | None = None) -> StatusReport:
    """Read slot, checkpoint and (when given) the control-plane row; raise SetupError when a database is unreachable."""
    with connect(source, "strangler-replicate-status") as conn:
        info = slot_info(conn, slot)
        now_lsn = current_lsn(conn)
    engine = sa.create_engine(target.sqlalchemy_url(), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as tconn:
            checkpoint = read_checkpoint(tconn, slot)
    except sa.exc.OperationalError as exc:
        raise SetupError(f"cannot read the target: {str(exc.orig).strip()}") from None
    finally:
        engine.dispose()
    reported = _control_row(control_url, slot) if control_url else None
    lag_seconds: float | None = None
    if reported and reported.get("lag_seconds") is not None:
        lag_seconds = float(reported["lag_seconds"])
    elif checkpoint is not None and checkpoint.commit_time is not None:
        lag_seconds = max(0.0, (datetime.now(UTC) - checkpoint.commit_time).total_seconds())
    return StatusReport(
        slot=slot,
        exists=info is not None,
        active_pid=info.active_pid if info else None,
        confirmed_lsn=lsn_to_str(info.confirmed_flush_lsn) if info and info.confirmed_flush_lsn else None,
        applied_lsn=lsn_to_str(checkpoint.lsn) if checkpoint else None,
        source_lsn=lsn_to_str(now_lsn),
        lag_bytes=max(0, now_lsn - checkpoint.lsn) if checkpoint else None,
        lag_seconds=lag_seconds,
        retained_wal_bytes=now_lsn - info.restart_lsn if info and info.restart_lsn else None,
        wal_status=info.wal_status if info else None,
        last_commit_time=checkpoint.commit_time.isoformat() if checkpoint and checkpoint.commit_time else None,
        reported_at=str(reported["updated_at"]) if reported else None,
    )


def _control_row(control_url: str, slot: str) -> dict[str, Any] | None:
    engine = sa.create_engine(control_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            if conn.execute(sa.text("SELECT to_regclass('strangler.replication_status')")).scalar() is None:
                return None
            row = conn.execute(sa.select(replication_status).where(replication_status.c.slot == slot)).first()
            return dict(row._mapping) if row else None
    except (sa.exc.OperationalError, psycopg.OperationalError) as exc:
        raise SetupError(f"cannot read the control plane: {exc}") from None
    finally:
        engine.dispose()
