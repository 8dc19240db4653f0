"""The control-plane database: its tables (SQLAlchemy Core) and how to get an engine for it."""

from __future__ import annotations

import time
import zlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

SCHEMA = "strangler"  # every control-plane table, sequence and the migrations' version table
metadata = sa.MetaData(schema=SCHEMA)


class AdvisoryLocks:
    """Every PostgreSQL advisory lock key the platform takes, in one place so no two parts collide."""

    CONTROL_SCHEMA = 7261001  # create_schema: many workers start at once
    ROUTE_SEED = 7261002  # seeding routes from the rules file
    RELAY = 7261003  # one active outbox relay per control plane (session lock)
    REPLICATION_SCHEMA = 7261004  # the replicator's checkpoint schema in the target
    REPLICATOR_CLASS = 7261005  # with the slot's CRC32: one active replicator per slot (session lock)
    PUBLICATION_SETUP = 7261006  # with the publication's CRC32, in the source: creating or extending it

    @staticmethod
    def key_of(name: str) -> int:
        """The second half of a two-part lock key for a named object: its CRC32, shifted to fit int4."""
        return zlib.crc32(name.encode()) - 2**31


routes = sa.Table(
    "routes",
    metadata,
    sa.Column("capability", sa.Text, primary_key=True),
    sa.Column("mode", sa.Text, nullable=False),
    sa.Column("percent", sa.Float, nullable=False, server_default="0"),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_by", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)

route_version = sa.Sequence("route_version_seq", metadata=metadata)

route_audit = sa.Table(
    "route_audit",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("capability", sa.Text, nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("from_mode", sa.Text),
    sa.Column("from_percent", sa.Float),
    sa.Column("to_mode", sa.Text, nullable=False),
    sa.Column("to_percent", sa.Float, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("client_id", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("capability", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),  # in_flight | done | in_doubt
    sa.Column("resource_id", sa.Text),
    sa.Column("request_id", sa.Text, nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("response_body", sa.LargeBinary),
    sa.Column("response_headers", JSONB),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

in_doubt = sa.Table(
    "in_doubt",
    metadata,
    sa.Column("resource_id", sa.Text, primary_key=True),
    sa.Column("capability", sa.Text, nullable=False),
    sa.Column("client_id", sa.Text, nullable=False),
    sa.Column("idempotency_key", sa.Text),
    sa.Column("request_id", sa.Text, nullable=False),
    sa.Column("upstream", sa.Text, nullable=False),
    sa.Column("request_body", sa.LargeBinary, nullable=False),
    sa.Column("path_params", JSONB, nullable=False),
    sa.Column("state", sa.Text, nullable=False),  # in_doubt | resolved | failed
    sa.Column("status_code", sa.Integer),
    sa.Column("response_body", sa.LargeBinary),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("give_up_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Index("in_doubt_pending", "next_check_at", postgresql_where=sa.text("state = 'in_doubt'")),
)


event_requests = sa.Table(
    "event_requests",
    metadata,
    sa.Column("request_id", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, nullable=False, unique=True),
    sa.Column("client_id", sa.Text, nullable=False),
    sa.Column("capability", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("sequence", sa.BigInteger, nullable=False),
    # accepted | applied | failed; "published" is read from the relay's publication log (the relay never writes here)
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("error", JSONB),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("applied_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("capability", "key", "sequence", name="event_requests_key_sequence"),
    # The watchdog's way to the unsettled events.
    sa.Index("event_requests_open", "capability", "key", "sequence", postgresql_where=sa.text("state = 'accepted'")),
    # Attempt counts touch no indexed column: with room on the page they stay heap-only (no index maintenance).
    postgresql_with={"fillfactor": 60},
)  # fmt: skip

# The writing transaction's id as a bigint (xid8 fits): the relay reads rows in (txid, id) order, and only those of
# transactions older than every running one, so no row can ever commit behind the position it has published up to.
current_txid = sa.text("(pg_current_xact_id()::text)::bigint")

# The envelopes, written once by the facade (and copied again by the relay's watchdog). Nothing is written to a row
# on publication: the relay records how far it has published in event_publications. An event has at most two rows:
# the facade's (its first publication is the status API's) and the watchdog's latest copy.
event_outbox = sa.Table(
    "event_outbox",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("txid", sa.BigInteger, nullable=False, server_default=current_txid),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("value", sa.LargeBinary, nullable=False),  # the envelope's JSON
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    # 0 for the facade's row, n for the watchdog's n-th copy (which replaces the copy before it)
    sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
    sa.Index("event_outbox_event_id", "event_id"),
    sa.Index("event_outbox_position", "txid", "id"),  # the relay's reading order
)

# The relay's log: one row per acknowledged batch, the outbox position it published up to (the last row is where the
# relay resumes) and when. An outbox row was published at the first publication whose position is at or past its own.
event_publications = sa.Table(
    "event_publications",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("upto_txid", sa.BigInteger, nullable=False),
    sa.Column("upto_id", sa.BigInteger, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("event_publications_upto", "upto_txid", "upto_id"),
)

event_key_sequences = sa.Table(
    "event_key_sequences",
    metadata,
    sa.Column("capability", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("accepted", sa.BigInteger, nullable=False),  # the last sequence handed out by the facade
    sa.Column("applied", sa.BigInteger, nullable=False, server_default="0"),  # the last one the applier settled
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("event_id", sa.Text),  # null when the record was not even a valid envelope
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("partition", sa.Integer),
    sa.Column("offset", sa.BigInteger),
    sa.Column("key", sa.Text),
    sa.Column("value", sa.LargeBinary),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("replayed_at", sa.DateTime(timezone=True)),
)


replication_status = sa.Table(
    "replication_status",
    metadata,
    sa.Column("slot", sa.Text, primary_key=True),
    sa.Column("applied_lsn", sa.Text),
    sa.Column("source_lsn", sa.Text),  # the source's current WAL position when last measured
    sa.Column("lag_bytes", sa.BigInteger),
    sa.Column("lag_seconds", sa.Float),  # now - commit time of the last applied source transaction (0 when caught up)
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# The parallel run's evidence: one row per comparison, its differing paths, learned noise, and skipped shadows.
comparisons = sa.Table(
    "comparisons",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("capability", sa.Text, nullable=False),
    sa.Column("request_id", sa.Text, nullable=False),
    sa.Column("primary_side", sa.Text, nullable=False),
    sa.Column("shadow_side", sa.Text, nullable=False),
    sa.Column("primary_status", sa.Integer, nullable=False),
    sa.Column("shadow_status", sa.Integer),  # null when the shadow timed out or failed to answer
    sa.Column("primary_ms", sa.Float, nullable=False),
    sa.Column("shadow_ms", sa.Float),
    sa.Column("verdict", sa.Text, nullable=False),  # match | mismatch | shadow_error | shadow_timeout
    sa.Column("critical", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("comparisons_capability_at", "capability", "at"),
)

comparison_diffs = sa.Table(
    "comparison_diffs",
    metadata,
    sa.Column("comparison_id", sa.BigInteger, sa.ForeignKey("strangler.comparisons.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("path", sa.Text, primary_key=True),  # generalised: list indexes as [*], e.g. $.items[*].amount
    sa.Column("kind", sa.Text, nullable=False),  # status | value | missing_in_shadow | missing_in_primary | type
    sa.Column("primary_value", sa.Text),  # masked
    sa.Column("shadow_value", sa.Text),  # masked
    sa.Column("critical", sa.Boolean, nullable=False),
)  # fmt: skip

comparison_noise = sa.Table(
    "comparison_noise",
    metadata,
    sa.Column("capability", sa.Text, primary_key=True),
    sa.Column("path", sa.Text, primary_key=True),
    sa.Column("seen", sa.BigInteger, nullable=False),
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
)

shadow_skips = sa.Table(
    "shadow_skips",
    metadata,
    sa.Column("capability", sa.Text, primary_key=True),
    sa.Column("minute", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("reason", sa.Text, primary_key=True),  # queue_full | not_sampled
    sa.Column("count", sa.BigInteger, nullable=False),
)


PING_IDLE_S = 1.0  # a pooled connection idle longer than this is pinged before use
CONNECT_TIMEOUT_S = 10  # a new connection to a host that does not answer fails after this (libpq: whole seconds)


def seconds_ago(seconds: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """Return the SQL for the database's now() minus `seconds` (an expression, such as a float bind parameter)."""
    return sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, seconds)


def make_engine(
    url: str, pool_size: int = 10, ping_idle_s: float = PING_IDLE_S, connect_timeout_s: int = CONNECT_TIMEOUT_S
) -> sa.Engine:
    """Return an engine for the control plane whose pooled connections are pinged before use once idle for
    `ping_idle_s`, and replaced if the ping fails (after a restart or a dropped connection); connecting to a host
    that does not answer fails after `connect_timeout_s` instead of waiting for TCP to give up."""
    engine = sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"connect_timeout": connect_timeout_s},
        future=True,
    )
    # pool_pre_ping would ping on every checkout: one more round trip on each accept, whose latency is a target.
    # A connection returned less than a second ago was alive then; one that dies in that second fails its statement,
    # which the caller answers like any database error (nothing is half-written: every write is one transaction).
    sa.event.listen(engine, "checkin", _note_checkin)
    sa.event.listen(engine, "checkout", lambda dbapi, record, proxy: _ping_if_idle(engine, dbapi, record, ping_idle_s))
    return engine


def _note_checkin(dbapi_connection: object, record: Any) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _ping_if_idle(engine: sa.Engine, dbapi_connection: Any, record: Any, idle_s: float) -> None:
    """Ping a connection that sat idle; raising DisconnectionError makes the pool replace it and try again."""
    if time.monotonic() - record.info.get("checked_in_at", float("-inf")) < idle_s:
        return
    try:
        alive = engine.dialect.do_ping(dbapi_connection)
    except engine.dialect.loaded_dbapi.Error as exc:
        raise sa.exc.DisconnectionError(f"idle connection failed its ping: {exc}") from exc
    if not alive:
        raise sa.exc.DisconnectionError("idle connection failed its ping")
