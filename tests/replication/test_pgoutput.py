"""The pgoutput decoder against bytes captured from a real server (fixtures/*.pgoutput) and hand-built edge cases."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest

from replication.pgoutput import (
    UNCHANGED,
    Begin,
    Binary,
    Commit,
    DecodeError,
    Delete,
    Insert,
    Message,
    Origin,
    PgOutputMessage,
    Relation,
    Truncate,
    Type,
    Update,
    decode,
    lsn_to_str,
    str_to_lsn,
)

FIXTURES = Path(__file__).parent / "fixtures"


def captured(name: str) -> list[PgOutputMessage]:
    """Decode every message of one captured scenario, in order."""
    lines = (FIXTURES / f"{name}.pgoutput").read_text().split()
    return [decode(bytes.fromhex(hex_)) for hex_ in lines[2::3]]


def of(kind: type, messages: list[PgOutputMessage]) -> list:
    return [m for m in messages if isinstance(m, kind)]


def test_every_captured_message_round_trips_through_the_decoder() -> None:
    for name in ("types", "full_identity", "messages"):
        assert captured(name), name


def test_begin_and_commit_frame_each_transaction_with_consistent_lsns() -> None:
    messages = captured("types")
    begins, commits = of(Begin, messages), of(Commit, messages)
    assert len(begins) == len(commits) == 6
    for begin, commit in zip(begins, commits, strict=True):
        assert begin.final_lsn == commit.commit_lsn < commit.end_lsn
        assert begin.commit_time == commit.commit_time
        assert begin.commit_time.tzinfo is UTC and begin.commit_time > datetime(2020, 1, 1, tzinfo=UTC)
    assert [b.xid for b in begins] == sorted(b.xid for b in begins)


def test_relation_and_type_messages_describe_the_table() -> None:
    messages = captured("types")
    relation = of(Relation, messages)[0]
    assert (relation.namespace, relation.name, relation.replica_identity) == ("public", "t", "d")
    names = [c.name for c in relation.columns]
    assert names == ["id", "n", "ts", "d", "j", "jb", "b", "a", "ta", "m", "ma", "f", "u", "big"]
    assert [c.name for c in relation.columns if c.is_key] == ["id"]
    by_name = {c.name: c for c in relation.columns}
    assert (by_name["n"].type_oid, by_name["n"].type_modifier) == (1700, (12 << 16 | 2) + 4)
    assert by_name["a"].type_oid == 1007
    types = {t.name: t for t in of(Type, messages)}
    assert {"mood", "_mood"} <= types.keys()
    assert by_name["m"].type_oid == types["mood"].type_oid and by_name["ma"].type_oid == types["_mood"].type_oid


def test_insert_carries_every_value_as_text() -> None:
    first, nulls = of(Insert, captured("types"))
    assert first.new[:4] == (b"1", b"12.34", b"2024-01-15 08:00:00.5+00", b"2024-01-15")
    assert first.new[6:11] == (b"\\x00ff", b"{1,NULL,3}", b'{"a b","c\\"d",NULL}', b"happy", b"{sad,ok}")
    assert first.new[13] == b"x" * 5000
    assert nulls.new == (b"3",) + (None,) * 13


def test_update_without_key_change_marks_unchanged_toast() -> None:
    update = of(Update, captured("types"))[0]
    assert update.old is None and update.new[1] == b"-0.50" and update.new[13] is UNCHANGED


def test_update_of_the_key_carries_the_old_key() -> None:
    update = of(Update, captured("types"))[1]
    assert update.new[0] == b"2" and not update.old_is_full_row
    assert update.old == (b"1",) + (None,) * 13


def test_delete_carries_the_old_key_and_truncate_the_relations() -> None:
    messages = captured("types")
    (delete,) = of(Delete, messages)
    assert delete.old[0] == b"2" and not delete.old_is_full_row
    (truncate,) = of(Truncate, messages)
    assert truncate.relation_ids == (of(Relation, messages)[0].relation_id,)
    assert not truncate.cascade and not truncate.restart_identity


def test_replica_identity_full_sends_old_rows_and_truncate_options() -> None:
    messages = captured("full_identity")
    nokey = of(Relation, messages)[0]
    assert nokey.replica_identity == "f" and all(c.is_key for c in nokey.columns)
    (update,) = of(Update, messages)
    assert update.old_is_full_row and update.old == (b"1", b"one") and update.new == (b"1", b"uno")
    (delete,) = of(Delete, messages)
    assert delete.old_is_full_row and delete.old == (b"1", b"uno")
    (truncate,) = of(Truncate, messages)
    assert len(truncate.relation_ids) == 2 and truncate.cascade and truncate.restart_identity


def test_logical_messages_and_origin() -> None:
    messages = captured("messages")
    outside, inside = of(Message, messages)
    assert (outside.transactional, outside.prefix, outside.content) == (False, "strangler.heartbeat", b"outside")
    assert (inside.transactional, inside.content) == (True, b"inside")
    (origin,) = of(Origin, messages)
    assert origin.name == "legacy_site" and origin.commit_lsn == 0xAB


# --- hand-built edge cases ------------------------------------------------------------------------------------------


def tuple_bytes(*values: bytes | str | None) -> bytes:
    out = struct.pack("!h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value == "u":
            out += b"u"
        elif isinstance(value, str):
            out += b"b" + struct.pack("!i", len(value)) + value.encode()
        else:
            out += b"t" + struct.pack("!i", len(value)) + value
    return out


def test_hand_built_update_with_old_row_null_unchanged_and_binary_values() -> None:
    data = b"U" + struct.pack("!I", 42) + b"O" + tuple_bytes(b"1", None) + b"N" + tuple_bytes(b"", "u", "bin")
    message = decode(data)
    assert message == Update(42, (b"", UNCHANGED, Binary(b"bin")), (b"1", None), True)


def test_hand_built_begin_commit_and_timestamps() -> None:
    assert decode(b"B" + struct.pack("!QqI", 0x1_0000_0010, 1_000_000, 7)) == Begin(
        0x1_0000_0010, datetime(2000, 1, 1, 0, 0, 1, tzinfo=UTC), 7
    )
    commit = decode(b"C" + struct.pack("!BQQq", 0, 10, 20, -1))
    assert commit == Commit(0, 10, 20, datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))


def test_hand_built_relation_with_empty_namespace_means_pg_catalog() -> None:
    data = (
        b"R" + struct.pack("!I", 5) + b"\0tbl\0" + b"f" + struct.pack("!h", 1) + b"\x01c\0" + struct.pack("!Ii", 25, -1)
    )
    relation = decode(data)
    assert isinstance(relation, Relation) and relation.qualified_name == "pg_catalog.tbl"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"Z\0\0", "unknown tag 'Z'"),
        (b"B\0\0", "Begin message: truncated"),
        (b"I" + struct.pack("!I", 1) + b"N" + tuple_bytes(b"abc")[:-1], "runs past the end"),
        (b"I" + struct.pack("!I", 1) + b"N" + struct.pack("!h", 1) + b"q", "unknown tuple value kind 'q'"),
        (b"I" + struct.pack("!I", 1) + b"X" + tuple_bytes(b"1"), "expected 'N'"),
        (b"D" + struct.pack("!I", 1) + b"N" + tuple_bytes(b"1"), "expected 'K' or 'O'"),
        (b"C" + struct.pack("!BQQq", 0, 1, 2, 3) + b"!", "1 trailing bytes"),
        (b"Y" + struct.pack("!I", 1) + b"public\0mood", "unterminated string"),
        (b"O" + struct.pack("!Q", 1) + b"\xff\xfe\0", "not UTF-8"),
        (b"M\x01" + struct.pack("!Q", 1) + b"p\0" + struct.pack("!i", 10) + b"short", "truncated"),
    ],
)
def test_malformed_messages_raise_decode_error_naming_the_problem(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason.replace("(", r"\(")):
        decode(data)


def test_lsn_text_form_round_trips() -> None:
    assert lsn_to_str(0x16_B374D848) == "16/B374D848"
    assert str_to_lsn("16/B374D848") == 0x16_B374D848
    assert str_to_lsn(lsn_to_str(0)) == 0
    with pytest.raises(ValueError):
        str_to_lsn("nonsense")
