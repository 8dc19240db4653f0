"""Split a key space into ranges, find the ranges whose checksums differ, and decide how to narrow them (pure).

A pass buckets every row by `width_bucket(key, bounds)`: bucket 0 holds keys below `bounds[0]`, bucket i the keys
in `[bounds[i-1], bounds[i])`, bucket len(bounds) the keys from the last bound up. A `Cut` names the buckets of one
pass that still need looking at; the next pass (or the row fetch) reads only the rows that fall into them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Key = Any  # int for integer keys, bytes for everything else


@dataclass(frozen=True)
class Sums:
    """One bucket on one side: row count, the sum of the row hashes, and the smallest and largest key seen."""

    count: int
    total: int
    low: Key = None
    high: Key = None


EMPTY = Sums(0, 0)


@dataclass(frozen=True)
class Cut:
    """The rows whose key falls into `buckets` of `width_bucket(key, bounds)`; no bounds means every row."""

    bounds: tuple[Key, ...] = ()
    buckets: tuple[int, ...] = ()

    @property
    def everything(self) -> bool:
        return not self.bounds


@dataclass(frozen=True)
class Range:
    """A half-open key range `[low, high)`; None is unbounded."""

    low: Key = None
    high: Key = None


def bucket_range(bounds: Sequence[Key], bucket: int) -> Range:
    """Return the key range of one bucket of `width_bucket(key, bounds)`."""
    low = bounds[bucket - 1] if bucket > 0 else None
    high = bounds[bucket] if bucket < len(bounds) else None
    return Range(low, high)


def int_bounds(low: int, high: int, parts: int) -> list[int]:
    """Return bounds cutting `[low, high)` into at most `parts` equal integer ranges, `low` and `high` included."""
    parts = max(1, min(parts, high - low))
    return sorted({low + (high - low) * i // parts for i in range(parts + 1)})


def even_buckets(bounds: Sequence[Key], key: str = "k") -> str | None:
    """Return SQL computing `width_bucket(key, bounds)` by arithmetic when `bounds` are `int_bounds`, else None.

    With bounds `low + span * i // parts`, the bounds at or below a key `low <= k < high` number
    `((k - low + 1) * parts - 1) // span + 1`; no binary search over an array per row.
    """
    if len(bounds) < 2:
        return None
    low, high, parts = bounds[0], bounds[-1], len(bounds) - 1
    if not all(isinstance(b, int) for b in (low, high)) or (high - low + 1) * parts >= 2**62:
        return None  # keeps the products inside bigint
    if list(bounds) != int_bounds(low, high, parts):
        return None
    return (
        f"CASE WHEN {key} < {low} THEN 0 WHEN {key} >= {high} THEN {parts + 1} "
        f"ELSE (({key} - {low} + 1) * {parts} - 1) / {high - low} + 1 END"
    )


def quantile_bounds(keys: Sequence[Key], parts: int) -> list[Key]:
    """Return up to `parts + 1` distinct ascending keys spread evenly over a sorted sample of keys."""
    if not keys:
        return []
    picks = {keys[min(len(keys) - 1, len(keys) * i // parts)] for i in range(parts)} | {keys[-1]}
    return sorted(picks)


def differing(legacy: Mapping[int, Sums], cloud: Mapping[int, Sums]) -> list[int]:
    """Return the buckets whose count or hash sum differ between the sides, ascending."""
    return sorted(b for b in legacy.keys() | cloud.keys() if _pair(legacy.get(b, EMPTY)) != _pair(cloud.get(b, EMPTY)))


def _pair(sums: Sums) -> tuple[int, int]:
    return sums.count, sums.total


def observed(bucket: int, legacy: Mapping[int, Sums], cloud: Mapping[int, Sums]) -> tuple[Key, Key]:
    """Return the smallest and largest key either side has in a bucket."""
    seen = [s for s in (legacy.get(bucket), cloud.get(bucket)) if s is not None and s.count]
    return min(s.low for s in seen), max(s.high for s in seen)


@dataclass
class Narrowing:
    """What to do after a pass: buckets to fetch row by row, and bounds for the buckets to split in the next pass."""

    fetch: list[int] = field(default_factory=list)
    split: dict[int, list[Key]] = field(default_factory=dict)  # bucket -> its sub-bounds
    rows: int = 0  # rows the differing buckets hold (the larger side), fetch and split alike


def narrow(
    bounds: Sequence[Key],
    legacy: Mapping[int, Sums],
    cloud: Mapping[int, Sums],
    kind: str,
    fetch_rows: int,
    fanout: int,
    samples: Mapping[int, Sequence[Key]] | None = None,
) -> Narrowing:
    """Decide, per differing bucket, to fetch its rows (small or indivisible) or to split it into `fanout` parts.

    Integer buckets split arithmetically over the keys observed in them; other keys split at quantiles of
    `samples[bucket]` (sorted keys from the bucket), and a bucket without a usable sample is fetched.
    """
    out = Narrowing()
    for bucket in differing(legacy, cloud):
        rows = max(legacy.get(bucket, EMPTY).count, cloud.get(bucket, EMPTY).count)
        out.rows += rows
        low, high = observed(bucket, legacy, cloud)
        if rows <= fetch_rows or low == high:
            out.fetch.append(bucket)
            continue
        if kind == "int":
            sub = int_bounds(low, high + 1, fanout)
        else:
            sub = quantile_bounds(list((samples or {}).get(bucket, ())), fanout)
            sub = sorted({*sub, low})
        if len(sub) < 2 and kind != "int":
            out.fetch.append(bucket)
        else:
            out.split[bucket] = sub
    return out


def next_bounds(split: Mapping[int, Sequence[Key]]) -> tuple[Key, ...]:
    """Return the bounds of the next pass: the union of every split bucket's sub-bounds, ascending."""
    return tuple(sorted({k for sub in split.values() for k in sub}))
