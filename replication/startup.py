"""Where a session starts streaming: resume from the checkpoint, or create the slot (and copy the snapshot) first."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import psycopg

from replication.applier import Applier, Checkpoint
from replication.config import MappingConfig
from replication.pgoutput import lsn_to_str
from replication.plan import TablePlan, plan_table
from replication.snapshot import SnapshotProgress, copy_snapshot
from replication.source import Conninfo, SetupError, SlotInfo, TableFacts, drop_slot, slot_info
from replication.wal import SlotStream

log = logging.getLogger("strangler.replication")
SNAPSHOT_MODES = ("initial", "never", "when_needed")


def wait_for_free_slot(
    conn: psycopg.Connection[Any], slot: str, wait_s: float, stop: threading.Event
) -> SlotInfo | None:
    """Return the slot once no other process streams it (a dead predecessor's walsender may linger a moment).

    Raises SetupError naming the holder when the slot is still in use after `wait_s` seconds.
    """
    info = slot_info(conn, slot)
    waited = 0.0
    while info is not None and info.active_pid is not None and waited < wait_s and not stop.is_set():
        stop.wait(0.2)
        waited += 0.2
        info = slot_info(conn, slot)
    if info is not None and info.active_pid is not None:
        holder = conn.execute(
            "SELECT coalesce(application_name, '') FROM pg_stat_activity WHERE pid = %s", (info.active_pid,)
        ).fetchone()
        who = f" ({holder[0]})" if holder and holder[0] else ""
        raise SetupError(f"slot {slot} is in use by PID {info.active_pid}{who}; one consumer per slot")
    return info


def initial_plans(mapping: MappingConfig, facts: Mapping[str, TableFacts], applier: Applier) -> list[TablePlan]:
    """Plan every mapped table from the source catalog and prepare its target (create tables, add columns)."""
    plans = []
    for name, table in mapping.tables.items():
        target = applier.describe(table.target_schema, table.target_table)
        plan = plan_table(table, facts[name].relation(), facts[name].facts(), target)
        applier.prepare(plan)
        plans.append(plan)
    return plans


def start_position(
    conn: psycopg.Connection[Any],
    wal: SlotStream,
    applier: Applier,
    source: Conninfo,
    mapping: MappingConfig,
    facts: Mapping[str, TableFacts],
    mode: str,
    info: SlotInfo | None,
    progress: SnapshotProgress | None = None,
) -> int:
    """Return the LSN to stream from, creating the slot and copying the snapshot when `mode` and state call for it."""
    slot = wal.slot
    if info is not None and (info.plugin != "pgoutput" or info.database != source.dbname):
        raise SetupError(
            f"slot {slot} exists for plugin {info.plugin} in database {info.database}; "
            f"expected pgoutput in {source.dbname} (choose another --slot)"
        )
    checkpoint = applier.checkpoint(slot)
    if info is not None and checkpoint is not None:
        log.info("resuming slot %s after %s", slot, lsn_to_str(checkpoint.lsn))
        return checkpoint.lsn
    if info is not None:  # a slot without a checkpoint: its snapshot never committed
        if mode == "never":
            start = info.confirmed_flush_lsn or 0
            applier.commit(Checkpoint(slot, start))
            return start
        log.info("slot %s has no applied checkpoint (an interrupted snapshot): making it again", slot)
        drop_slot(conn, slot)
    elif checkpoint is not None and mode == "initial":
        raise SetupError(
            f"slot {slot} is missing but the target applied changes up to {lsn_to_str(checkpoint.lsn)}: "
            "changes since then may be lost. Run with --snapshot when_needed to copy the tables again, "
            "or --snapshot never to go on from now"
        )
    if mode == "never":
        created = wal.create_slot(export_snapshot=False)
        applier.commit(Checkpoint(slot, created.consistent_lsn))
        log.info("created slot %s at %s without a snapshot", slot, lsn_to_str(created.consistent_lsn))
        return created.consistent_lsn
    created = wal.create_slot(export_snapshot=True)
    log.info("created slot %s; copying the snapshot as of %s", slot, lsn_to_str(created.consistent_lsn))
    plans = initial_plans(mapping, facts, applier)
    counts = copy_snapshot(
        source, created.snapshot_name, plans, applier, Checkpoint(slot, created.consistent_lsn), progress
    )
    log.info("snapshot done: %s", ", ".join(f"{table} {rows} rows" for table, rows in counts.items()))
    return created.consistent_lsn
