"""CPU time of process trees, read from /proc, so a run can say what each component spent per request."""

from __future__ import annotations

import os
import resource
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields start after its last ")".
    return raw[raw.rindex(")") + 2 :].split()


def children_map() -> dict[int, list[int]]:
    """Return every live process's children, by parent pid."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def tree(root: int, children: Mapping[int, list[int]] | None = None) -> list[int]:
    """Return `root` and all its live descendants."""
    children = children if children is not None else children_map()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def cpu_seconds(pid: int) -> float | None:
    """Return the user+system CPU seconds a live process has used so far, None when it is gone."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _TICKS if fields else None


def reaped_children_seconds() -> float:
    """Return the CPU seconds of this process's finished children (the load generators)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


Snapshot = dict[str, dict[int, float]]


@dataclass
class CpuMeter:
    """Measure CPU seconds per component over a window; components are named root pids, plus the load generator."""

    roots: Mapping[str, Callable[[], int | None]]

    def snapshot(self) -> Snapshot:
        """Return, per component, the CPU seconds used so far by each live process of its tree."""
        children = children_map()
        taken: Snapshot = {"loadgen": {0: reaped_children_seconds()}}
        for name, root in self.roots.items():
            pid = root()
            per_pid = {p: cpu_seconds(p) for p in tree(pid, children)} if pid else {}
            taken[name] = {p: s for p, s in per_pid.items() if s is not None}
        return taken

    @staticmethod
    def delta(before: Snapshot, after: Snapshot) -> dict[str, float]:
        """Return CPU seconds spent per component between two snapshots (processes gone by `after` are not counted)."""
        spent = {}
        for name, now in after.items():
            then = before.get(name, {})
            spent[name] = round(sum(s - then.get(pid, 0.0) for pid, s in now.items()), 3)
        return spent


def machine_busy_seconds() -> float:
    """Return the CPU seconds all cores have spent busy since boot (everything but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    # Guest time is already counted in user and nice.
    return (sum(fields[:8]) - idle) / _TICKS
