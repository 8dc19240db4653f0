"""The applier port: write planned row changes to a target store, atomically with the slot's checkpoint.

Everything applied since the last `commit` becomes visible in one target transaction together with the new
checkpoint, or not at all (`rollback`, a crash). `MemoryApplier` is the in-memory adapter the contract tests hold
beside `PostgresApplier`.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from replication import pgtypes
from replication.pgoutput import UNCHANGED, TupleData
from replication.plan import TablePlan, TargetColumn
from replication.transforms import base_type


class ApplyError(RuntimeError):
    """The target refused a change or is out of step with the source; the message names table and key."""


@dataclass(frozen=True)
class Checkpoint:
    """How far a slot's changes are applied: the end LSN of the last applied source commit, and its time."""

    slot: str
    lsn: int
    commit_time: datetime | None = None


class Applier(ABC):
    """Write row changes into a target store; `commit` makes them visible atomically with the checkpoint."""

    @abstractmethod
    def checkpoint(self, slot: str) -> Checkpoint | None:
        """Return the last committed checkpoint of `slot`, or None when nothing was ever applied."""

    @abstractmethod
    def describe(self, schema: str, table: str) -> dict[str, TargetColumn] | None:
        """Return the target table's columns by name, or None when the table does not exist."""

    @abstractmethod
    def prepare(self, plan: TablePlan) -> None:
        """Run the plan's DDL (create table, add columns) inside the open transaction."""

    @abstractmethod
    def insert(self, plan: TablePlan, new: TupleData) -> None:
        """Insert one row given as its decoded source tuple (the plan converts it; a bad value is a TransformError)."""

    @abstractmethod
    def update(self, plan: TablePlan, new: TupleData, old: TupleData | None) -> None:
        """Update the row whose key `old` (else `new`) holds; UNCHANGED values stay; a missing row is an ApplyError."""

    @abstractmethod
    def delete(self, plan: TablePlan, old: TupleData) -> None:
        """Delete the row whose key `old` holds; a missing row is an ApplyError."""

    @abstractmethod
    def truncate(self, plans: Sequence[TablePlan]) -> None:
        """Empty these target tables."""

    @abstractmethod
    def copy_text(self, plan: TablePlan, blocks: Iterable[bytes]) -> None:
        """Load rows given as PostgreSQL COPY text data (columns in plan order), for the initial snapshot."""

    @abstractmethod
    def commit(self, checkpoint: Checkpoint) -> None:
        """Commit everything applied since the last commit together with `checkpoint`, or raise and keep nothing."""

    @abstractmethod
    def rollback(self) -> None:
        """Drop everything applied since the last commit."""

    def close(self) -> None:  # noqa: B027 - adapters without connections have nothing to release
        """Release connections (rolling back anything uncommitted)."""


def _unescape_copy(field: str) -> str | None:
    if field == "\\N":
        return None
    escapes = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\", "b": "\b", "f": "\f", "v": "\v"}
    out, i = [], 0
    while i < len(field):
        char = field[i]
        if char == "\\" and i + 1 < len(field):
            out.append(escapes.get(field[i + 1], field[i + 1]))
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


class MemoryApplier(Applier):
    """An in-memory target: tables are dicts keyed by the plan key; the committed state is copied on commit."""

    def __init__(self, tables: Mapping[str, Mapping[str, TargetColumn]] | None = None) -> None:
        self.schemas: dict[str, dict[str, TargetColumn]] = {k: dict(v) for k, v in (tables or {}).items()}
        self.rows: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {k: {} for k in self.schemas}
        self.checkpoints: dict[str, Checkpoint] = {}
        self.commits = 0
        self._saved = self._state()

    def _state(self) -> tuple[Any, ...]:
        return copy.deepcopy((self.schemas, self.rows, self.checkpoints))

    def checkpoint(self, slot: str) -> Checkpoint | None:
        return self._saved[2].get(slot)

    def describe(self, schema: str, table: str) -> dict[str, TargetColumn] | None:
        found = self.schemas.get(f"{schema}.{table}")
        return dict(found) if found is not None else None

    def prepare(self, plan: TablePlan) -> None:
        columns = self.schemas.setdefault(plan.target, {})
        self.rows.setdefault(plan.target, {})
        for col in plan.columns:
            columns.setdefault(col.target, TargetColumn(col.target, col.type_sql))

    def _table(self, plan: TablePlan) -> dict[tuple[Any, ...], dict[str, Any]]:
        if plan.target not in self.rows:
            raise ApplyError(f"{plan.target} does not exist")
        return self.rows[plan.target]

    def insert(self, plan: TablePlan, new: TupleData) -> None:
        self._insert_row(plan, plan.row(new))

    def _insert_row(self, plan: TablePlan, row: Sequence[Any]) -> None:
        values = {col.target: value for col, value in zip(plan.columns, row, strict=True)}
        key = tuple(values[col.target] for col in plan.key)
        table = self._table(plan)
        if key in table:
            raise ApplyError(f"{plan.target}: a row with key {key} already exists")
        table[key] = values

    def update(self, plan: TablePlan, new: TupleData, old: TupleData | None) -> None:
        table, key = self._table(plan), plan.key_of(new if old is None else old)
        current = table.pop(key, None)
        if current is None:
            raise ApplyError(f"{plan.target}: update found no row with key {key}")
        for col, value in zip(plan.columns, plan.row(new), strict=True):
            if value is not UNCHANGED:
                current[col.target] = value
        table[tuple(current[col.target] for col in plan.key)] = current

    def delete(self, plan: TablePlan, old: TupleData) -> None:
        key = plan.key_of(old)
        if self._table(plan).pop(key, None) is None:
            raise ApplyError(f"{plan.target}: delete found no row with key {key}")

    def truncate(self, plans: Sequence[TablePlan]) -> None:
        for plan in plans:
            self._table(plan).clear()

    def copy_text(self, plan: TablePlan, blocks: Iterable[bytes]) -> None:
        data = b"".join(blocks).decode("utf-8")
        converters = [pgtypes.converter(pgtypes.BY_NAME.get(base_type(c.type_sql), 25)) for c in plan.columns]
        for line in filter(None, data.split("\n")):
            fields = [_unescape_copy(f) for f in line.split("\t")]
            self._insert_row(
                plan, [None if f is None else conv(f.encode()) for conv, f in zip(converters, fields, strict=True)]
            )

    def commit(self, checkpoint: Checkpoint) -> None:
        saved = self._saved[2].get(checkpoint.slot)
        if saved is not None and saved.lsn > checkpoint.lsn:
            raise ApplyError(f"checkpoint of slot {checkpoint.slot} would move back")
        self.checkpoints[checkpoint.slot] = checkpoint
        self._saved = self._state()
        self.commits += 1

    def rollback(self) -> None:
        self.schemas, self.rows, self.checkpoints = copy.deepcopy(self._saved)
