"""Compare fetched rows key by key and classify each difference: missing, extra or different (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MISSING = "missing"  # in legacy, not in the cloud store
EXTRA = "extra"  # in the cloud store, not in legacy
DIFFERENT = "different"  # in both, some columns differ
KINDS = (MISSING, EXTRA, DIFFERENT)

Values = tuple[Any, ...]  # canonical text from SQL; typed values when a table is compared in Python


@dataclass(frozen=True)
class Row:
    """One side's row: its columns as canonical text, and (legacy only) the row version it was read at."""

    values: Values
    version: str | None = None


@dataclass(frozen=True)
class ColumnDiff:
    """One differing column: its target name and both sides' values as text (unmasked; mask before showing)."""

    column: str
    legacy: str | None
    cloud: str | None


@dataclass(frozen=True)
class RowDiff:
    """One key that differs between the sides, how, and (for `different`) in which columns."""

    table: str  # the target table
    key: str
    kind: str
    columns: tuple[ColumnDiff, ...] = ()


def compare_rows(
    table: str, names: Sequence[str], legacy: Mapping[str, Row], cloud: Mapping[str, Row]
) -> list[RowDiff]:
    """Return the differences between two keyed row sets, ordered by kind then key."""
    diffs = []
    for key in legacy.keys() | cloud.keys():
        diff = compare_key(table, names, key, legacy.get(key), cloud.get(key))
        if diff is not None:
            diffs.append(diff)
    return sorted(diffs, key=lambda d: (KINDS.index(d.kind), d.key))


def compare_key(table: str, names: Sequence[str], key: str, legacy: Row | None, cloud: Row | None) -> RowDiff | None:
    """Return how one key differs, or None when both sides agree (both absent, or equal values)."""
    if legacy is None and cloud is None:
        return None
    if cloud is None:
        return RowDiff(table, key, MISSING)
    if legacy is None:
        return RowDiff(table, key, EXTRA)
    columns = tuple(
        ColumnDiff(name, _text(a), _text(b))
        for name, a, b in zip(names, legacy.values, cloud.values, strict=True)
        if a != b
    )
    return RowDiff(table, key, DIFFERENT, columns) if columns else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def same_version(first: Row | None, second: Row | None) -> bool:
    """True when two reads of a legacy row saw the same row version (or the row absent both times)."""
    if first is None or second is None:
        return first is second
    return first.version == second.version and first.values == second.values
