"""Re-check differing keys while the replicator keeps applying, so changes in flight are not reported as drift.

One round reads the keys on the legacy side (S1, with each row's version), waits until the replicator has applied
the legacy position of that read, reads the cloud side (C), then legacy again (S2). A key is settled equal when C
matches S1 or S2. It is confirmed as drift when it differs although its legacy row did not change from S1 to S2:
the cloud read then reflects a legacy state within that window, where the row was what S1 shows. A key absent on
legacy both times must differ in two such rounds (a row inserted and deleted meanwhile leaves no version to check).
Keys whose legacy row kept changing through every round are reported as unsettled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg

from parallel_run.reconcile import checksum, pyrows
from parallel_run.reconcile.compare import KINDS, Row, RowDiff, compare_key, same_version
from parallel_run.reconcile.lag import insert_lsn, nudge, wait_applied
from parallel_run.reconcile.spec import TableSpec

if TYPE_CHECKING:
    from parallel_run.reconcile.engine import Progress
    from parallel_run.reconcile.model import Options, TableResult

Conn = psycopg.Connection[Any]


def _read(conn: Conn, spec: TableSpec, keys: list[str], legacy: bool) -> dict[str, Row]:
    if not spec.in_sql:
        rows = pyrows.legacy_rows(conn, spec) if legacy else pyrows.cloud_rows(conn, spec)
        return {k: rows[k] for k in keys if k in rows}
    return checksum.fetch_keys(conn, spec.legacy if legacy else spec.cloud, keys)


def settle(
    specs: list[TableSpec], results: list[TableResult], legacy: Conn, cloud: Conn, options: Options, show: Progress
) -> int:
    """Re-check every table's candidate differences in place (diffs keep the confirmed, unsettled the rest).

    Returns the number of rounds run.
    """
    pending = {r.target: {d.key: d for d in r.diffs} for r in results if r.diffs}
    confirmed: dict[str, list[RowDiff]] = {t: [] for t in pending}
    conclusive: dict[tuple[str, str], int] = {}
    by_target = {s.target: s for s in specs}
    rounds = 0
    while rounds < options.rounds and any(pending.values()):
        rounds += 1
        show.note(f"re-checking {sum(map(len, pending.values())):,} differing rows (round {rounds})")
        first: dict[str, dict[str, Row]] = {}
        with legacy.transaction():
            legacy.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            for target, keys in pending.items():
                first[target] = _read(legacy, by_target[target], list(keys), legacy=True)
            lsn = insert_lsn(legacy)
        nudge(legacy)
        wait_applied(cloud, options.slot, lsn, options.wait_timeout_s)
        cloud_now = {t: _read(cloud, by_target[t], list(keys), legacy=False) for t, keys in pending.items()}
        second = {t: _read(legacy, by_target[t], list(keys), legacy=True) for t, keys in pending.items()}
        for target, keys in pending.items():
            spec = by_target[target]
            for key in list(keys):
                s1, c, s2 = first[target].get(key), cloud_now[target].get(key), second[target].get(key)
                now = compare_key(target, spec.columns, key, s1, c)
                if now is None or compare_key(target, spec.columns, key, s2, c) is None:
                    del keys[key]
                    continue
                keys[key] = now
                if not same_version(s1, s2):
                    continue
                seen = conclusive[(target, key)] = conclusive.get((target, key), 0) + 1
                if seen >= (2 if s1 is None else 1):
                    confirmed[target].append(now)
                    del keys[key]
    for result in results:
        if result.target in pending:
            result.diffs = sorted(confirmed[result.target], key=lambda d: (KINDS.index(d.kind), d.key))
            result.unsettled = sorted(pending[result.target].values(), key=lambda d: (KINDS.index(d.kind), d.key))
    return rounds
