"""Following the message sequence: events per transaction, and skipping what the checkpoint says is applied."""

from __future__ import annotations

import pytest

from replication.pgoutput import Begin, Commit, Insert, Message
from replication.stream import (
    RowChange,
    StreamError,
    TransactionStream,
    TruncateTables,
    TxBegin,
    TxCommit,
    TxSkipped,
)
from tests.replication.test_pgoutput import captured, of


def events(checkpoint: int, scenario: str = "types") -> list[object]:
    stream = TransactionStream(checkpoint)
    return [e for e in (stream.feed(m) for m in captured(scenario)) if e is not None]


def test_a_fresh_stream_yields_every_transaction_in_order() -> None:
    seen = events(0)
    kinds = [type(e).__name__ for e in seen]
    assert kinds == [
        "TxBegin", "SchemaSeen", "RowChange", "TxCommit",
        "TxBegin", "RowChange", "TxCommit",
        "TxBegin", "RowChange", "TxCommit",
        "TxBegin", "RowChange", "TxCommit",
        "TxBegin", "RowChange", "TxCommit",
        "TxBegin", "SchemaSeen", "TruncateTables", "TxCommit",
    ]  # fmt: skip
    changes = [e for e in seen if isinstance(e, RowChange)]
    assert [c.op for c in changes] == ["insert", "insert", "update", "update", "delete"]
    assert changes[3].old is not None and changes[3].relation.name == "t"
    truncate = next(e for e in seen if isinstance(e, TruncateTables))
    assert [r.name for r in truncate.relations] == ["t"]


def test_transactions_ending_at_or_below_the_checkpoint_are_skipped() -> None:
    commits = of(Commit, captured("types"))
    checkpoint = commits[2].end_lsn  # the third transaction is applied, and everything before it
    seen = events(checkpoint)
    assert [e.end_lsn for e in seen if isinstance(e, TxSkipped)] == [c.end_lsn for c in commits[:3]]
    applied = [e for e in seen if isinstance(e, TxCommit)]
    assert [e.end_lsn for e in applied] == [c.end_lsn for c in commits[3:]]
    assert not any(isinstance(e, RowChange) and e.op == "insert" for e in seen)


def test_relations_announced_inside_skipped_transactions_are_still_known() -> None:
    stream = TransactionStream(of(Commit, captured("types"))[0].end_lsn)
    out = [stream.feed(m) for m in captured("types")]
    assert out[:5] == [None] * 5 and isinstance(out[5], TxSkipped)  # Begin, Type, Type, Relation, Insert, Commit
    change = next(e for e in out if isinstance(e, RowChange))
    assert change.relation.name == "t" and stream.type_names


def test_the_checkpoint_moves_with_each_commit() -> None:
    stream = TransactionStream(0)
    for message in captured("types"):
        event = stream.feed(message)
        if isinstance(event, TxCommit):
            assert stream.checkpoint == event.end_lsn


def test_origin_and_messages_reach_the_applier() -> None:
    seen = events(0, "messages")
    assert [e.content for e in seen if isinstance(e, Message)] == [b"outside", b"inside"]
    assert [e.origin for e in seen if isinstance(e, TxCommit)] == [None, "legacy_site"]


def test_protocol_violations_are_refused() -> None:
    begin = of(Begin, captured("types"))[0]
    stream = TransactionStream()
    with pytest.raises(StreamError, match="outside a transaction"):
        stream.feed(Insert(1, (b"1",)))
    stream.feed(begin)
    with pytest.raises(StreamError, match="before its Relation"):
        stream.feed(Insert(99, (b"1",)))
    with pytest.raises(StreamError, match="inside transaction"):
        stream.feed(begin)
    assert isinstance(TransactionStream().feed(begin), TxBegin)
