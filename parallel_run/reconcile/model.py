"""What a reconciliation is asked to do and what it found."""

from __future__ import annotations

from dataclasses import dataclass, field

from parallel_run.reconcile.compare import EXTRA, MISSING, RowDiff
from replication.config import MappingConfig
from replication.source import Conninfo


@dataclass(frozen=True)
class Options:
    """One reconciliation: the two databases, the mapping, the slot to wait for, which tables, and tuning."""

    source: Conninfo
    target: Conninfo
    mapping: MappingConfig
    slot: str
    tables: tuple[str, ...] = ()  # legacy, cloud or bare names; empty: every mapped table
    wait: bool = True  # wait for the replicator to apply the legacy position before comparing
    wait_timeout_s: float = 60.0
    bucket_rows: int = 500  # aim for this many rows per range in the first pass
    fetch_rows: int = 64  # a differing range this small is fetched row by row
    fetch_budget: int = 20_000  # ... and all differing ranges are fetched at once when they hold this few rows
    fanout: int = 32  # a larger differing range is split into this many
    slices: int = 2  # connections per side in one snapshot, each checksumming its own share of a table's pages
    rounds: int = 10  # re-checks of a differing key while the replicator is applying, before it is left unsettled


@dataclass
class TableResult:
    """One table's outcome: counts on both sides, how it was compared, and the differences found."""

    source: str
    target: str
    legacy_rows: int = 0
    cloud_rows: int = 0
    mode: str = "sql"  # sql: checksums in each database; python: rows fetched and converted in Python
    note: str = ""
    ranges: int = 0  # ranges in the first checksum pass
    passes: int = 0
    fetched: int = 0  # rows fetched for row-by-row comparison (both sides)
    diffs: list[RowDiff] = field(default_factory=list)
    unsettled: list[RowDiff] = field(default_factory=list)  # kept differing while their legacy rows kept changing

    def count(self, kind: str) -> int:
        return sum(1 for d in self.diffs if d.kind == kind)

    @property
    def missing(self) -> int:
        return self.count(MISSING)

    @property
    def extra(self) -> int:
        return self.count(EXTRA)


@dataclass
class Result:
    """The whole run: per-table outcomes and the legacy position it compared at."""

    tables: list[TableResult]
    lsn: str | None = None  # the legacy position the comparison started from
    applied: str | None = None  # the replicator's checkpoint the cloud snapshot was taken at (when waited)
    waited: bool = False
    rounds: int = 0  # re-check rounds run
    seconds: float = 0.0

    @property
    def drift(self) -> int:
        """Rows that differ (confirmed or unsettled): zero means the cloud store matches legacy."""
        return sum(len(t.diffs) + len(t.unsettled) for t in self.tables)
