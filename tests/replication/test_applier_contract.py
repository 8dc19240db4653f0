"""One contract for every applier adapter: the in-memory one and the PostgreSQL one must behave the same."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from replication.applier import Applier, ApplyError, Checkpoint, MemoryApplier
from replication.config import parse_mapping
from replication.pg_applier import PostgresApplier
from replication.pgoutput import UNCHANGED, Column, Relation
from replication.plan import SourceFacts, TablePlan, plan_table

MAPPING = parse_mapping("tables:\n  public.items:\n    target: tgt.items\n    columns:\n      name: label\n")
RELATION = Relation(
    7, "public", "items", "d",
    (Column("id", 23, -1, True), Column("name", 25, -1, False), Column("doc", 3802, -1, False),
     Column("big", 25, -1, False)),
)  # fmt: skip
FACTS = SourceFacts({"id": "integer", "name": "text", "doc": "jsonb", "big": "text"}, ("id",))
Rows = Callable[[], dict[int, tuple[Any, ...]]]


def make_plan(applier: Applier) -> TablePlan:
    plan = plan_table(MAPPING.tables["public.items"], RELATION, FACTS, applier.describe("tgt", "items"))
    applier.prepare(plan)
    applier.commit(Checkpoint("s", 1))
    return plan


@pytest.fixture(params=["memory", "postgres"])
def adapter(request: pytest.FixtureRequest, new_database: Callable[[str], str]) -> Iterator[tuple[Applier, Rows]]:
    if request.param == "memory":
        memory = MemoryApplier()
        yield memory, lambda: {k[0]: tuple(v.values()) for k, v in memory.rows["tgt.items"].items()}
        return
    engine = sa.create_engine(new_database("applier"), poolclass=sa.pool.NullPool)
    applier = PostgresApplier(engine, run_rows=3)

    def rows() -> dict[int, tuple[Any, ...]]:
        with engine.connect() as conn:
            return {r[0]: tuple(r) for r in conn.execute(sa.text("SELECT id, label, doc, big FROM tgt.items"))}

    try:
        yield applier, rows
    finally:
        applier.close()
        engine.dispose()


def row(key: int, name: str, doc: Any = None, big: Any = "big") -> tuple[Any, ...]:
    return (key, name, doc, big)


def wire(key: int, name: str, doc: str | None = None, big: Any = "big") -> tuple[Any, ...]:
    """The same row as pgoutput sends it: text bytes, None for NULL, UNCHANGED for an unsent TOAST value."""
    return (
        str(key).encode(),
        name.encode(),
        doc.encode() if doc else None,
        big.encode() if isinstance(big, str) else big,
    )


def old_key(key: int) -> tuple[Any, ...]:
    return (str(key).encode(), None, None, None)


def test_committed_rows_and_checkpoint_are_visible_together(adapter: tuple[Applier, Rows]) -> None:
    applier, rows = adapter
    plan = make_plan(applier)
    assert applier.checkpoint("s") == Checkpoint("s", 1)
    for key in range(10):  # a run long enough to go out as COPY text
        applier.insert(plan, wire(key, f"n{key}\tx\\y\nz", f'{{"k": [{key}]}}'))
    applier.insert(plan, wire(10, "short run"))
    applier.commit(Checkpoint("s", 100))
    assert applier.checkpoint("s") is not None and applier.checkpoint("s").lsn == 100  # type: ignore[union-attr]
    assert rows()[3] == (3, "n3\tx\\y\nz", {"k": [3]}, "big") and len(rows()) == 11
    assert rows()[10] == row(10, "short run")


def test_rollback_keeps_neither_rows_nor_checkpoint(adapter: tuple[Applier, Rows]) -> None:
    applier, rows = adapter
    plan = make_plan(applier)
    applier.insert(plan, wire(1, "a"))
    applier.rollback()
    assert rows() == {} and applier.checkpoint("s") == Checkpoint("s", 1)
    assert applier.checkpoint("other") is None


def test_updates_keep_unchanged_toast_values_and_follow_key_changes(adapter: tuple[Applier, Rows]) -> None:
    applier, rows = adapter
    plan = make_plan(applier)
    applier.insert(plan, wire(1, "a", big="x" * 3000))
    applier.insert(plan, wire(2, "b"))
    applier.update(plan, wire(1, "a2", None, UNCHANGED), None)
    applier.update(plan, wire(20, "b2", '{"moved": true}', "y"), old_key(2))
    applier.commit(Checkpoint("s", 10))
    assert rows() == {1: (1, "a2", None, "x" * 3000), 20: (20, "b2", {"moved": True}, "y")}


def test_deletes_and_truncates(adapter: tuple[Applier, Rows]) -> None:
    applier, rows = adapter
    plan = make_plan(applier)
    for key in range(5):
        applier.insert(plan, wire(key, "r"))
    applier.delete(plan, old_key(3))
    applier.commit(Checkpoint("s", 10))
    assert sorted(rows()) == [0, 1, 2, 4]
    applier.truncate([plan])
    applier.insert(plan, wire(9, "after"))
    applier.commit(Checkpoint("s", 11))
    assert rows() == {9: row(9, "after")}


def test_changes_to_missing_rows_and_duplicate_keys_are_refused(adapter: tuple[Applier, Rows]) -> None:
    applier, _ = adapter
    plan = make_plan(applier)
    with pytest.raises(ApplyError, match=r"tgt\.items"):
        applier.update(plan, wire(404, "x"), None)
        applier.commit(Checkpoint("s", 5))
    applier.rollback()
    with pytest.raises(ApplyError, match=r"tgt\.items"):
        applier.delete(plan, old_key(404))
        applier.commit(Checkpoint("s", 5))
    applier.rollback()
    with pytest.raises(ApplyError, match=r"tgt\.items"):
        applier.insert(plan, wire(1, "x"))
        applier.insert(plan, wire(1, "x"))
        applier.commit(Checkpoint("s", 5))
    applier.rollback()


def test_the_checkpoint_never_moves_back(adapter: tuple[Applier, Rows]) -> None:
    applier, _ = adapter
    make_plan(applier)
    applier.commit(Checkpoint("s", 50))
    with pytest.raises(ApplyError, match="checkpoint"):
        applier.commit(Checkpoint("s", 40))
    applier.rollback()
    assert applier.checkpoint("s") == Checkpoint("s", 50)


def test_copy_text_loads_snapshot_rows(adapter: tuple[Applier, Rows]) -> None:
    applier, rows = adapter
    plan = make_plan(applier)
    applier.copy_text(plan, [b'1\tone\t{"a": 1}\tb1\n2\ttab\\there\t\\N\t', b"\\N\n"])
    applier.commit(Checkpoint("s", 2))
    assert rows() == {1: (1, "one", {"a": 1}, "b1"), 2: (2, "tab\there", None, None)}


def test_describe_reports_the_target_table(adapter: tuple[Applier, Rows]) -> None:
    applier, _ = adapter
    assert applier.describe("tgt", "items") is None
    make_plan(applier)
    columns = applier.describe("tgt", "items")
    assert columns is not None and list(columns) == ["id", "label", "doc", "big"]
