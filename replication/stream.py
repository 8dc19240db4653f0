"""Follow a sequence of pgoutput messages: track relations and transactions, skip what is already applied (pure).

`TransactionStream.feed` turns each decoded message into at most one event for the applier. Transactions whose
commit lies at or below the checkpoint (the end LSN of the last applied commit) are consumed silently, so a
restart never applies a source transaction twice; their Relation messages still update what is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from replication.pgoutput import (
    Begin,
    Commit,
    Delete,
    Insert,
    Message,
    Origin,
    PgOutputMessage,
    Relation,
    Truncate,
    TupleData,
    Type,
    Update,
)


class StreamError(RuntimeError):
    """The message sequence broke the protocol (a change outside a transaction, an unknown relation)."""


@dataclass(frozen=True, slots=True)
class TxBegin:
    """A source transaction to apply starts."""

    xid: int
    final_lsn: int
    commit_time: datetime


@dataclass(slots=True)  # not frozen: built once per row
class RowChange:
    """One row change of a relation, with the tuples as the server sent them."""

    op: str  # "insert" | "update" | "delete"
    relation: Relation
    new: TupleData | None
    old: TupleData | None
    old_is_full_row: bool = False


@dataclass(frozen=True, slots=True)
class TruncateTables:
    """Relations emptied by one source TRUNCATE."""

    relations: tuple[Relation, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True, slots=True)
class SchemaSeen:
    """A Relation message inside a transaction: the relation's current shape, checked before its next change."""

    relation: Relation


@dataclass(frozen=True, slots=True)
class TxCommit:
    """A source transaction ends: everything since its TxBegin belongs to it."""

    xid: int
    end_lsn: int
    commit_time: datetime
    origin: str | None


@dataclass(frozen=True, slots=True)
class TxSkipped:
    """A source transaction at or below the checkpoint was passed over (already applied)."""

    xid: int
    end_lsn: int


Event = TxBegin | RowChange | TruncateTables | SchemaSeen | TxCommit | TxSkipped | Message


class TransactionStream:
    """Turn decoded messages into events, skipping transactions that end at or below `checkpoint`."""

    def __init__(self, checkpoint: int = 0) -> None:
        self.checkpoint = checkpoint
        self.relations: dict[int, Relation] = {}
        self.type_names: dict[int, str] = {}
        self._xid: int | None = None
        self._skipping = False
        self._origin: str | None = None

    @property
    def in_transaction(self) -> bool:
        return self._xid is not None

    def relation(self, relation_id: int) -> Relation:
        """Return a known relation, or raise StreamError (the server always announces one before using it)."""
        try:
            return self.relations[relation_id]
        except KeyError:
            raise StreamError(f"change for relation {relation_id} before its Relation message") from None

    def feed(self, message: PgOutputMessage) -> Event | None:
        """Return the event for one message, or None when it only updates state or belongs to a skipped transaction."""
        if type(message) is Insert and not self._skipping and self._xid is not None:  # the common case first
            relation = self.relations.get(message.relation_id)
            if relation is not None:
                return RowChange("insert", relation, message.new, None)
        if isinstance(message, Begin):
            if self._xid is not None:
                raise StreamError(f"Begin of {message.xid} inside transaction {self._xid}")
            self._xid, self._origin = message.xid, None
            self._skipping = message.final_lsn < self.checkpoint
            return None if self._skipping else TxBegin(message.xid, message.final_lsn, message.commit_time)
        if isinstance(message, Commit):
            return self._commit(message)
        if isinstance(message, Relation):
            self.relations[message.relation_id] = message
            return None if self._skipping or self._xid is None else SchemaSeen(message)
        if isinstance(message, Type):
            self.type_names[message.type_oid] = message.name
            return None
        if isinstance(message, Message):
            return None if self._skipping else message
        if isinstance(message, Origin):
            self._origin = message.name
            return None
        if self._xid is None:
            raise StreamError(f"{type(message).__name__} outside a transaction")
        if self._skipping:
            return None
        return self._change(message)

    def _commit(self, message: Commit) -> TxCommit | TxSkipped:
        if self._xid is None:
            raise StreamError("Commit outside a transaction")
        xid, skipped, self._xid = self._xid, self._skipping, None
        self._skipping = False
        if skipped:
            return TxSkipped(xid, message.end_lsn)
        self.checkpoint = max(self.checkpoint, message.end_lsn)
        return TxCommit(xid, message.end_lsn, message.commit_time, self._origin)

    def _change(self, message: Insert | Update | Delete | Truncate) -> Event:
        if isinstance(message, Insert):
            return RowChange("insert", self.relation(message.relation_id), message.new, None)
        if isinstance(message, Update):
            relation = self.relation(message.relation_id)
            return RowChange("update", relation, message.new, message.old, message.old_is_full_row)
        if isinstance(message, Delete):
            relation = self.relation(message.relation_id)
            return RowChange("delete", relation, None, message.old, message.old_is_full_row)
        relations = tuple(self.relation(rid) for rid in message.relation_ids)
        return TruncateTables(relations, message.cascade, message.restart_identity)
