"""The source database: connection settings, the checks that refuse a bad set-up, publication and slot management."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import sqlalchemy as sa

from core.db import AdvisoryLocks
from replication.config import MappingConfig, TableMapping
from replication.pgoutput import Column, Relation, str_to_lsn
from replication.plan import SourceFacts, quote_ident

# One text form per type for everything the source sends us (decoded values and snapshot COPY data alike).
SESSION_OPTIONS = (
    "-c DateStyle=ISO -c IntervalStyle=postgres -c TimeZone=UTC -c bytea_output=hex -c extra_float_digits=3"
)
HEARTBEAT_PREFIX = "strangler.heartbeat"


class SetupError(RuntimeError):
    """The databases cannot be replicated as configured; the message says what is wrong and what to do."""


class Unreachable(SetupError):
    """A database did not answer; fatal at start, retried once the replicator has been running."""


@dataclass(frozen=True)
class Conninfo:
    """Where a database is, from a SQLAlchemy or libpq URL; `kwargs()` feeds psycopg and psycopg2 alike."""

    host: str | None
    port: int | None
    user: str | None
    password: str | None
    dbname: str

    @classmethod
    def from_url(cls, url: str) -> Conninfo:
        """Parse `postgresql[+driver]://user:pw@host:port/db`; raise SetupError on anything else."""
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError:
            raise SetupError(f"not a database URL: {url!r} (expected postgresql://user@host:port/dbname)") from None
        if not parsed.drivername.startswith("postgresql") or not parsed.database:
            raise SetupError(f"not a PostgreSQL database URL: {parsed.render_as_string(hide_password=True)}")
        return cls(parsed.host, parsed.port, parsed.username, parsed.password, parsed.database)

    def kwargs(self, **extra: Any) -> dict[str, Any]:
        """Return libpq keyword arguments, with `extra` (options, application_name, ...) added."""
        base = {"host": self.host, "port": self.port, "user": self.user, "password": self.password}
        return {"dbname": self.dbname, **{k: v for k, v in base.items() if v is not None}, **extra}

    def sqlalchemy_url(self) -> sa.URL:
        """Return the psycopg (3) SQLAlchemy URL of this database."""
        return sa.URL.create("postgresql+psycopg", self.user, self.password, self.host, self.port, self.dbname)

    def describe(self) -> str:
        return f"{self.user or ''}@{self.host or 'localhost'}:{self.port or 5432}/{self.dbname}"


def connect(info: Conninfo, application_name: str = "strangler-replicate") -> psycopg.Connection[Any]:
    """Open an autocommit connection for catalog queries and heartbeats; raise SetupError when it cannot."""
    try:
        return psycopg.connect(
            **info.kwargs(options=SESSION_OPTIONS, application_name=application_name, connect_timeout=10),
            autocommit=True,
        )
    except psycopg.OperationalError as exc:
        raise Unreachable(f"cannot connect to {info.describe()}: {str(exc).strip()}") from None


def conninfo_of(url: str | None, what: str, var: str) -> Conninfo:
    """Return the settings of a `--{what}-url` option (or its variable `var`); SetupError names what is missing."""
    if not url:
        raise SetupError(f"no {what} database: pass --{what}-url or set {var}")
    return Conninfo.from_url(url)


@dataclass(frozen=True)
class TableFacts:
    """One source table as its catalog describes it."""

    name: str
    columns: tuple[tuple[str, int, int, str], ...]  # name, type oid, typmod, format_type
    key: tuple[str, ...]  # primary key, or the replica identity index; () under REPLICA IDENTITY FULL
    identity: str  # d, f, i, n
    defaults: Mapping[str, str]
    readable: bool = True

    def facts(self) -> SourceFacts:
        return SourceFacts({c[0]: c[3] for c in self.columns}, self.key, self.defaults)

    def relation(self) -> Relation:
        """Return the Relation the stream would announce for this table now (planning before streaming starts)."""
        schema, table = self.name.split(".", 1)
        cols = tuple(Column(n, oid, mod, n in self.key or not self.key) for n, oid, mod, _ in self.columns)
        return Relation(0, schema, table, self.identity, cols)


_TABLE = """
SELECT c.oid, c.relreplident, has_schema_privilege(c.relnamespace, 'USAGE') AND has_table_privilege(c.oid, 'SELECT'),
       coalesce((SELECT array_agg(a.attname ORDER BY array_position(i.indkey::int2[], a.attnum))
                 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                 WHERE i.indrelid = c.oid AND i.indisprimary), '{}'),
       coalesce((SELECT array_agg(a.attname ORDER BY array_position(i.indkey::int2[], a.attnum))
                 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                 WHERE i.indrelid = c.oid AND i.indisreplident), '{}')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')
"""
_COLUMNS = """
SELECT a.attname, a.atttypid, a.atttypmod, format_type(a.atttypid, a.atttypmod),
       CASE WHEN a.atthasmissing THEN pg_get_expr(d.adbin, d.adrelid) END
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""


def table_facts(conn: psycopg.Connection[Any], name: str) -> TableFacts | None:
    """Return the catalog facts of `schema.table`, or None when it does not exist."""
    schema, table = name.split(".", 1)
    row = conn.execute(_TABLE, (schema, table)).fetchone()
    if row is None:
        return None
    oid, identity, readable, primary, replident = row
    cols = conn.execute(_COLUMNS, (oid,)).fetchall()
    key = tuple(primary) if identity in ("d", "f") else tuple(replident)
    columns = tuple((c[0], c[1], c[2], c[3]) for c in cols)
    return TableFacts(name, columns, key, identity, {c[0]: c[4] for c in cols if c[4]}, readable)


def check_source(conn: psycopg.Connection[Any], mapping: MappingConfig) -> dict[str, TableFacts]:
    """Refuse a source that cannot be replicated (wal_level, privileges, missing or keyless tables); return facts."""
    wal_level = conn.execute("SHOW wal_level").fetchone()[0]  # type: ignore[index]
    if wal_level != "logical":
        raise SetupError(
            f"the source has wal_level={wal_level}; logical replication needs wal_level=logical "
            "(ALTER SYSTEM SET wal_level = logical, then restart the source server)"
        )
    user, superuser, replication = conn.execute(
        "SELECT rolname, rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user"
    ).fetchone()  # type: ignore[misc]
    if not (superuser or replication):
        raise SetupError(
            f"role {user} may not stream changes: it needs the REPLICATION attribute (ALTER ROLE {user} REPLICATION)"
        )
    facts: dict[str, TableFacts] = {}
    missing, keyless, unreadable = [], [], []
    for name, table in mapping.tables.items():
        found = table_facts(conn, name)
        if found is None:
            missing.append(f"{name} ({table.where()})")
            continue
        if not found.readable:
            unreadable.append(name)
        if found.identity == "n" or (found.identity == "d" and not found.key):
            keyless.append(name)
        facts[name] = found
    if missing:
        raise SetupError(f"tables missing on the source: {', '.join(missing)}")
    if keyless:
        raise SetupError(
            f"tables without a primary key: {', '.join(keyless)} — add a primary key, or declare "
            f"ALTER TABLE ... REPLICA IDENTITY FULL so updates and deletes can be matched"
        )
    if unreadable:
        raise SetupError(f"role {user} may not read tables: {', '.join(unreadable)} (GRANT SELECT ON ... TO {user})")
    return facts


def ensure_publication(conn: psycopg.Connection[Any], name: str, tables: Sequence[TableMapping]) -> None:
    """Create the publication with the configured tables if missing, or add the tables it lacks."""
    wanted = {t.source for t in tables}
    try:
        # Replicators started together would both see it missing and one CREATE would fail: check under a lock.
        with conn.transaction():
            key = (AdvisoryLocks.PUBLICATION_SETUP, AdvisoryLocks.key_of(name))
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", key)
            rows = conn.execute(
                "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = %s", (name,)
            )
            have = {r[0] for r in rows}
            exists = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (name,)).fetchone() is not None
            quoted = ", ".join(f"{quote_ident(t.source_schema)}.{quote_ident(t.source_table)}" for t in tables
                               if t.source not in have)  # fmt: skip
            if not exists:
                conn.execute(f"CREATE PUBLICATION {quote_ident(name)} FOR TABLE {quoted}")
            elif wanted - have:
                conn.execute(f"ALTER PUBLICATION {quote_ident(name)} ADD TABLE {quoted}")
    except psycopg.errors.InsufficientPrivilege as exc:
        raise SetupError(
            f"cannot create or extend publication {name}: {str(exc).strip()} — have the tables' owner run "
            f"CREATE PUBLICATION {name} FOR TABLE {', '.join(sorted(wanted))}"
        ) from None


@dataclass(frozen=True)
class SlotInfo:
    """A replication slot as pg_replication_slots shows it."""

    name: str
    plugin: str | None
    database: str | None
    active_pid: int | None
    confirmed_flush_lsn: int | None
    restart_lsn: int | None
    wal_status: str | None


def slot_info(conn: psycopg.Connection[Any], name: str) -> SlotInfo | None:
    """Return the slot named `name`, or None."""
    row = conn.execute(
        "SELECT slot_name, plugin, database, active_pid, confirmed_flush_lsn::text, restart_lsn::text, wal_status "
        "FROM pg_replication_slots WHERE slot_name = %s",
        (name,),
    ).fetchone()
    if row is None:
        return None
    lsn = [str_to_lsn(v) if v else None for v in (row[4], row[5])]
    return SlotInfo(row[0], row[1], row[2], row[3], lsn[0], lsn[1], row[6])


def drop_slot(conn: psycopg.Connection[Any], name: str) -> None:
    """Drop an inactive slot (a half-made one from an interrupted snapshot)."""
    conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))


def emit_heartbeat(conn: psycopg.Connection[Any], note: str = "") -> int:
    """Write a transactional logical message so the slot advances even when no configured table changes."""
    row = conn.execute("SELECT pg_logical_emit_message(true, %s, %s)::text", (HEARTBEAT_PREFIX, note)).fetchone()
    return str_to_lsn(row[0])  # type: ignore[index]


def current_lsn(conn: psycopg.Connection[Any]) -> int:
    """Return the source's current WAL write position."""
    return str_to_lsn(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])  # type: ignore[index]


def wal_position(conn: psycopg.Connection[Any], slot: str) -> tuple[int, int]:
    """Return the source's current WAL position and how many bytes of WAL the slot retains."""
    row = conn.execute(
        "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, coalesce((SELECT pg_current_wal_lsn() - restart_lsn "
        "FROM pg_replication_slots WHERE slot_name = %s), 0)",
        (slot,),
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def type_sql(conn: psycopg.Connection[Any], pairs: Sequence[tuple[int, int]]) -> dict[tuple[int, int], str]:
    """Return format_type for (type oid, typmod) pairs."""
    out: dict[tuple[int, int], str] = {}
    for oid, mod in pairs:
        out[(oid, mod)] = conn.execute("SELECT format_type(%s, %s)", (oid, mod)).fetchone()[0]  # type: ignore[index]
    return out
