"""The pgoutput stream of one slot over psycopg2's replication protocol: create the slot, read, confirm."""

from __future__ import annotations

import contextlib
import select
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from replication.pgoutput import lsn_to_str, str_to_lsn
from replication.plan import quote_ident
from replication.source import SESSION_OPTIONS, Conninfo, SetupError, Unreachable


class StreamLost(RuntimeError):
    """The replication connection broke (the server restarted, the network failed); a new session resumes."""


def _lost(slot: str, exc: psycopg2.Error) -> Exception:
    # Connection classes (08) and operator intervention (57: shutdown, restart) are outages; others are refusals.
    reason = str(exc).strip() or type(exc).__name__
    if exc.pgcode and not exc.pgcode.startswith(("08", "57")):
        return SetupError(f"the source stopped streaming slot {slot}: {reason}")
    return StreamLost(f"slot {slot}: {reason}")


@dataclass(frozen=True)
class CreatedSlot:
    """A new slot: the LSN from which its stream is consistent, and the exported snapshot of that moment."""

    consistent_lsn: int
    snapshot_name: str | None


class WalMessage(Protocol):
    """One message of the stream (psycopg2's ReplicationMessage): the pgoutput bytes and where they start."""

    payload: bytes
    data_start: int
    wal_end: int


class SlotStream:
    """One replication connection for one slot; `read()` never blocks, `wait()` does, `confirm()` acknowledges."""

    def __init__(self, info: Conninfo, slot: str, publication: str, application_name: str) -> None:
        """Connect in replication mode; raise SetupError when the server refuses (pg_hba, privileges)."""
        self.slot, self.publication = slot, publication
        try:
            self._conn = psycopg2.connect(
                connection_factory=psycopg2.extras.LogicalReplicationConnection,
                **info.kwargs(options=SESSION_OPTIONS, application_name=application_name, connect_timeout=10),
            )
        except psycopg2.OperationalError as exc:
            reason = str(exc).strip()
            kind = SetupError if "pg_hba.conf" in reason or "authentication" in reason else Unreachable
            raise kind(f"cannot open a replication connection to {info.describe()}: {reason}") from None
        self._cur: Any = self._conn.cursor()
        self._confirmed = 0

    def create_slot(self, export_snapshot: bool) -> CreatedSlot:
        """Create the slot (pgoutput); with `export_snapshot` the snapshot stays valid until `start()` is called."""
        mode = "EXPORT_SNAPSHOT" if export_snapshot else "NOEXPORT_SNAPSHOT"
        try:
            self._cur.execute(f"CREATE_REPLICATION_SLOT {quote_ident(self.slot)} LOGICAL pgoutput {mode}")
        except psycopg2.errors.DuplicateObject:
            raise SetupError(f"slot {self.slot} was created by someone else meanwhile") from None
        except psycopg2.Error as exc:
            raise _lost(self.slot, exc) from None
        _, consistent, snapshot, _ = self._cur.fetchone()
        return CreatedSlot(str_to_lsn(consistent), snapshot)

    def start(self, start_lsn: int) -> None:
        """Start streaming from `start_lsn` (the server resumes at the slot's confirmed position if that is later)."""
        options = {"proto_version": "1", "publication_names": quote_ident(self.publication), "messages": "true"}
        try:
            self._cur.start_replication(
                slot_name=self.slot, decode=False, start_lsn=lsn_to_str(start_lsn), options=options, status_interval=1
            )
        except psycopg2.errors.ObjectInUse as exc:
            raise SetupError(f"slot {self.slot} is in use by another consumer: {str(exc).strip()}") from None
        except psycopg2.errors.UndefinedObject as exc:
            raise SetupError(f"cannot stream slot {self.slot}: {str(exc).strip()}") from None
        except psycopg2.Error as exc:
            raise _lost(self.slot, exc) from None
        self._confirmed = start_lsn

    def read(self) -> WalMessage | None:
        """Return the next message if one has arrived, else None (keepalives are answered on the way)."""
        try:
            msg = self._cur.read_message()
        except psycopg2.Error as exc:
            raise _lost(self.slot, exc) from None
        return msg

    def wait(self, timeout: float) -> None:
        """Block until the server sent something or `timeout` seconds passed."""
        select.select([self._conn], [], [], timeout)

    def confirm(self, lsn: int) -> None:
        """Tell the server everything up to `lsn` is applied, so the slot may release the WAL before it."""
        if lsn > self._confirmed:
            try:
                self._cur.send_feedback(write_lsn=lsn, flush_lsn=lsn, apply_lsn=lsn, force=True)
            except psycopg2.Error as exc:
                raise _lost(self.slot, exc) from None
            self._confirmed = lsn

    @property
    def wal_end(self) -> int:
        """The server's WAL end as of the last message or keepalive."""
        return int(self._cur.wal_end or 0)

    def close(self) -> None:
        """Close the replication connection (the slot becomes free for the next consumer)."""
        with contextlib.suppress(psycopg2.Error):
            self._conn.close()
