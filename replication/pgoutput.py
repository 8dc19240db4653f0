"""Decode pgoutput (logical replication protocol v1) messages from bytes into dataclasses (pure, no I/O)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)


class DecodeError(ValueError):
    """The bytes are not a well-formed pgoutput v1 message; str() says which message and why."""


class _Unchanged:
    """The marker for an unchanged TOASTed value: the server did not send it, the target keeps its own."""

    _instance: _Unchanged | None = None

    def __new__(cls) -> _Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged()


@dataclass(frozen=True, slots=True)
class Binary:
    """A column value sent in binary format (only when the `binary` option is on)."""

    data: bytes


# One tuple's values in column order: text bytes, None for NULL, UNCHANGED for an unsent TOAST value, or Binary.
Value = bytes | None | _Unchanged | Binary
TupleData = tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Begin:
    """A source transaction starts; its commit record will be at `final_lsn`."""

    final_lsn: int  # the LSN of the transaction's commit record
    commit_time: datetime
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    """A source transaction committed; `end_lsn` is what a subscriber confirms once it is applied."""

    flags: int
    commit_lsn: int
    end_lsn: int  # the end of the commit record: what a subscriber confirms as flushed
    commit_time: datetime


@dataclass(frozen=True, slots=True)
class Origin:
    """The transaction was replicated into the source from the named origin."""

    commit_lsn: int
    name: str


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a Relation: name, type and whether it is part of the replica identity."""

    name: str
    type_oid: int
    type_modifier: int
    is_key: bool


@dataclass(frozen=True, slots=True)
class Relation:
    """A table's shape as of this point of the stream; sent before its first change and after DDL."""

    relation_id: int
    namespace: str  # "" stands for pg_catalog
    name: str
    replica_identity: str  # d default, n nothing, f full, i index
    columns: tuple[Column, ...]

    @property
    def qualified_name(self) -> str:
        return f"{self.namespace or 'pg_catalog'}.{self.name}"


@dataclass(frozen=True, slots=True)
class Type:
    """The name of a non-built-in type (an enum, a domain, an array of them) by OID."""

    type_oid: int
    namespace: str
    name: str


@dataclass(slots=True)  # not frozen: built once per row, and frozen's __init__ is a third of the decoding
class Insert:
    """A new row."""

    relation_id: int
    new: TupleData


@dataclass(slots=True)  # not frozen: built once per row, and frozen's __init__ is a third of the decoding
class Update:
    """A changed row: the new tuple, and the old key or old row when the server sends one."""

    relation_id: int
    new: TupleData
    old: TupleData | None = None  # the old key ('K') or, under REPLICA IDENTITY FULL, the old row ('O')
    old_is_full_row: bool = False


@dataclass(slots=True)  # not frozen: built once per row, and frozen's __init__ is a third of the decoding
class Delete:
    """A deleted row, identified by its old key (or old row under REPLICA IDENTITY FULL)."""

    relation_id: int
    old: TupleData
    old_is_full_row: bool = False


@dataclass(frozen=True, slots=True)
class Truncate:
    """Tables emptied in one statement."""

    relation_ids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True, slots=True)
class Message:
    """A logical message (pg_logical_emit_message), inside a transaction or not."""

    transactional: bool
    lsn: int
    prefix: str
    content: bytes


PgOutputMessage = Begin | Commit | Origin | Relation | Type | Insert | Update | Delete | Truncate | Message

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_BEGIN = struct.Struct("!QqI")
_COMMIT = struct.Struct("!BQQq")


def timestamp(micros: int) -> datetime:
    """Return the UTC datetime of a protocol timestamp (microseconds since 2000-01-01 UTC)."""
    return PG_EPOCH + timedelta(microseconds=micros)


def lsn_to_str(lsn: int) -> str:
    """Format an LSN the way PostgreSQL does (`16/B374D848`)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def str_to_lsn(text: str) -> int:
    """Parse `16/B374D848` into an integer LSN; raise ValueError on anything else."""
    high, sep, low = text.strip().partition("/")
    if not sep:
        raise ValueError(f"not an LSN: {text!r}")
    return (int(high, 16) << 32) | int(low, 16)


class _Reader:
    __slots__ = ("buf", "kind", "pos")

    def __init__(self, buf: bytes, kind: str) -> None:
        self.buf, self.pos, self.kind = buf, 1, kind

    def fail(self, why: str) -> DecodeError:
        return DecodeError(f"pgoutput {self.kind} message: {why} (at byte {self.pos} of {len(self.buf)})")

    def need(self, count: int) -> None:
        if self.pos + count > len(self.buf):
            raise self.fail(f"truncated, {count} more bytes expected")

    def unpack(self, fmt: struct.Struct) -> tuple[int, ...]:
        self.need(fmt.size)
        values = fmt.unpack_from(self.buf, self.pos)
        self.pos += fmt.size
        return values

    def u8(self) -> int:
        self.need(1)
        self.pos += 1
        return self.buf[self.pos - 1]

    def i16(self) -> int:
        return self.unpack(_I16)[0]

    def i32(self) -> int:
        return self.unpack(_I32)[0]

    def u32(self) -> int:
        return self.unpack(_U32)[0]

    def u64(self) -> int:
        return self.unpack(_U64)[0]

    def string(self) -> str:
        end = self.buf.find(0, self.pos)
        if end < 0:
            raise self.fail("unterminated string")
        try:
            text = self.buf[self.pos : end].decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail("string is not UTF-8") from None
        self.pos = end + 1
        return text

    def tuple_data(self) -> TupleData:
        try:
            values, self.pos = _tuple(self.buf, self.pos)
        except _BadTuple as exc:
            self.pos = exc.pos
            raise self.fail(exc.reason) from None
        return values

    def done(self) -> None:
        if self.pos != len(self.buf):
            raise self.fail(f"{len(self.buf) - self.pos} trailing bytes")


class _BadTuple(Exception):
    def __init__(self, pos: int, reason: str) -> None:
        self.pos, self.reason = pos, reason


def _tuple(buf: bytes, pos: int) -> tuple[TupleData, int]:
    # The hot loop of the decoder: kept to local names and one bounds check at the end.
    unpack = _I32.unpack_from
    values: list[Value] = []
    append = values.append
    try:
        count = _I16.unpack_from(buf, pos)[0]
        pos += 2
        for _ in range(count):
            kind = buf[pos]
            if kind == 0x74:  # 't' text
                end = pos + 5 + unpack(buf, pos + 1)[0]
                if end < pos + 5:
                    raise _BadTuple(pos, "negative value length")
                append(buf[pos + 5 : end])
                pos = end
            elif kind == 0x6E:  # 'n' null
                append(None)
                pos += 1
            elif kind == 0x75:  # 'u' unchanged TOAST
                append(UNCHANGED)
                pos += 1
            elif kind == 0x62:  # 'b' binary
                end = pos + 5 + unpack(buf, pos + 1)[0]
                append(Binary(bytes(buf[pos + 5 : end])))
                pos = end
            else:
                raise _BadTuple(pos, f"unknown tuple value kind {chr(kind)!r}")
    except (IndexError, struct.error):
        raise _BadTuple(pos, "truncated tuple data") from None
    if pos > len(buf):
        raise _BadTuple(len(buf), "a value runs past the end of the message")
    return tuple(values), pos


def _begin(r: _Reader) -> Begin:
    final_lsn, micros, xid = r.unpack(_BEGIN)
    return Begin(final_lsn, timestamp(micros), xid)


def _commit(r: _Reader) -> Commit:
    flags, commit_lsn, end_lsn, micros = r.unpack(_COMMIT)
    return Commit(flags, commit_lsn, end_lsn, timestamp(micros))


def _origin(r: _Reader) -> Origin:
    return Origin(r.u64(), r.string())


def _relation(r: _Reader) -> Relation:
    relation_id, namespace, name = r.u32(), r.string(), r.string()
    identity, count = chr(r.u8()), r.i16()
    columns = []
    for _ in range(count):
        flags, col = r.u8(), r.string()
        columns.append(Column(col, r.u32(), r.i32(), bool(flags & 1)))
    return Relation(relation_id, namespace, name, identity, tuple(columns))


def _type(r: _Reader) -> Type:
    return Type(r.u32(), r.string(), r.string())


def _insert(r: _Reader) -> Insert:
    relation_id = r.u32()
    if r.u8() != 0x4E:
        raise r.fail("expected 'N' before the new tuple")
    return Insert(relation_id, r.tuple_data())


def _update(r: _Reader) -> Update:
    relation_id = r.u32()
    marker = r.u8()
    old: TupleData | None = None
    full = marker == 0x4F
    if marker in (0x4B, 0x4F):  # 'K' old key, 'O' old row
        old = r.tuple_data()
        marker = r.u8()
    if marker != 0x4E:
        raise r.fail("expected 'N' before the new tuple")
    return Update(relation_id, r.tuple_data(), old, full)


def _delete(r: _Reader) -> Delete:
    relation_id = r.u32()
    marker = r.u8()
    if marker not in (0x4B, 0x4F):
        raise r.fail("expected 'K' or 'O' before the old tuple")
    return Delete(relation_id, r.tuple_data(), marker == 0x4F)


def _truncate(r: _Reader) -> Truncate:
    count, options = r.i32(), r.u8()
    ids = tuple(r.u32() for _ in range(count))
    return Truncate(ids, bool(options & 1), bool(options & 2))


def _message(r: _Reader) -> Message:
    flags, lsn, prefix = r.u8(), r.u64(), r.string()
    length = r.i32()
    r.need(length)
    content = bytes(r.buf[r.pos : r.pos + length])
    r.pos += length
    return Message(bool(flags & 1), lsn, prefix, content)


_DECODERS: dict[str, tuple[str, Callable[[_Reader], PgOutputMessage]]] = {
    "B": ("Begin", _begin),
    "C": ("Commit", _commit),
    "O": ("Origin", _origin),
    "R": ("Relation", _relation),
    "Y": ("Type", _type),
    "I": ("Insert", _insert),
    "U": ("Update", _update),
    "D": ("Delete", _delete),
    "T": ("Truncate", _truncate),
    "M": ("Message", _message),
}


def decode(data: bytes) -> PgOutputMessage:
    """Decode one pgoutput v1 message; raise DecodeError for an unknown tag, truncation or trailing bytes."""
    if not data:
        raise DecodeError("pgoutput message: empty")
    if data[0] == 0x49 and len(data) > 6 and data[5] == 0x4E:  # the common case, an Insert, without dispatch
        try:
            values, end = _tuple(data, 6)
        except _BadTuple:
            end = -1
        if end == len(data):
            return Insert(_U32.unpack_from(data, 1)[0], values)
        # Malformed: decode it the careful way for a precise error.
    tag = chr(data[0])
    entry = _DECODERS.get(tag)
    if entry is None:
        raise DecodeError(f"pgoutput message: unknown tag {tag!r} (only protocol version 1 is supported)")
    kind, decoder = entry
    reader = _Reader(data, kind)
    message = decoder(reader)
    reader.done()
    return message
