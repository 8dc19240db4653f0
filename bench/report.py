"""Targets, the printed table and the JSON record of one facade benchmark run."""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.loadgen import LoadResult, combine

PATHS = ("direct", "nginx", "floor", "facade")  # every path a run measures, in the order it measures them


@dataclass(frozen=True)
class Measured:
    """One load run against one path, with the CPU seconds each component spent meanwhile."""

    scenario: str
    path: str
    load: LoadResult
    cpu_s: Mapping[str, float]
    machine_busy_s: float
    wall_s: float

    def cpu_ms_per_request(self, component: str) -> float:
        """Return a component's CPU milliseconds per answered request in this run."""
        return 1000 * self.cpu_s.get(component, 0.0) / max(1, self.load.requests)

    @property
    def others_cores(self) -> float:
        """Return the cores that processes outside this benchmark kept busy during the run (noise)."""
        return max(0.0, self.machine_busy_s - sum(self.cpu_s.values())) / self.wall_s

    @property
    def path_cpu_ms(self) -> float:
        """Return the CPU milliseconds per request of everything on the path, load generator included."""
        return sum(self.cpu_ms_per_request(name) for name in self.cpu_s)

    def as_dict(self) -> dict[str, Any]:
        """Return the run as plain JSON-ready values."""
        return {
            "scenario": self.scenario,
            "path": self.path,
            **self.load.as_dict(),
            "cpu_s": dict(self.cpu_s),
            "cpu_ms_per_request": {name: round(self.cpu_ms_per_request(name), 3) for name in self.cpu_s},
            "path_cpu_ms_per_request": round(self.path_cpu_ms, 3),
            "machine_busy_cores": round(self.machine_busy_s / self.wall_s, 2),
            "other_processes_cores": round(self.others_cores, 2),
        }


def combine_runs(runs: Sequence[Measured]) -> Measured:
    """Return interleaved rounds of one scenario and path as one run (see `loadgen.combine` for the latencies)."""
    first = runs[0]
    cpu = {name: sum(m.cpu_s.get(name, 0.0) for m in runs) for name in first.cpu_s}
    return Measured(
        first.scenario,
        first.path,
        combine([m.load for m in runs]),
        cpu,
        sum(m.machine_busy_s for m in runs),
        sum(m.wall_s for m in runs),
    )


@dataclass(frozen=True)
class Target:
    """One target of the issue: a measured value against a limit, met or not."""

    name: str
    value: float
    limit: float
    at_least: bool
    unit: str = ""

    @property
    def met(self) -> bool:
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def as_dict(self) -> dict[str, Any]:
        """Return the target as plain JSON-ready values."""
        return {**asdict(self), "met": self.met}


@dataclass
class Run:
    """Everything one run measured, ready to print and to save."""

    config: dict[str, Any]
    machine: dict[str, Any]
    runs: list[Measured] = field(default_factory=list)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    parts: dict[str, float] = field(default_factory=dict)

    def get(self, scenario: str, path: str) -> Measured:
        """Return the run of one path in one scenario."""
        return next(m for m in self.runs if m.scenario == scenario and m.path == path)

    def ratios(self) -> dict[str, float]:
        """Return throughput ratios at saturation and latency added over direct at the fixed rate."""
        sat = {p: self.get("saturation", p).load for p in PATHS}
        fixed = {p: self.get("fixed_rate", p).load for p in PATHS}
        return {
            "facade_over_nginx_rps": sat["facade"].rps / sat["nginx"].rps,
            "facade_over_direct_rps": sat["facade"].rps / sat["direct"].rps,
            "nginx_over_direct_rps": sat["nginx"].rps / sat["direct"].rps,
            "facade_added_p50_ms": fixed["facade"].p50_ms - fixed["direct"].p50_ms,
            "facade_added_p99_ms": fixed["facade"].p99_ms - fixed["direct"].p99_ms,
            "nginx_added_p50_ms": fixed["nginx"].p50_ms - fixed["direct"].p50_ms,
            "nginx_added_p99_ms": fixed["nginx"].p99_ms - fixed["direct"].p99_ms,
            # The floor: what gunicorn and urllib3 alone cost on these cores, before any feature of the facade.
            "floor_over_nginx_rps": sat["floor"].rps / sat["nginx"].rps,
            "floor_added_p50_ms": fixed["floor"].p50_ms - fixed["direct"].p50_ms,
            "floor_added_p99_ms": fixed["floor"].p99_ms - fixed["direct"].p99_ms,
            **self._low_rate_added(),
            # Noise-resistant: the throughput ratio the cores could carry at each path's CPU cost per request.
            "cpu_bound_facade_over_nginx": self.get("saturation", "nginx").path_cpu_ms
            / self.get("saturation", "facade").path_cpu_ms,
        }

    def _low_rate_added(self) -> dict[str, float]:
        if not any(m.scenario == "low_rate" for m in self.runs):
            return {}
        low = {p: self.get("low_rate", p).load for p in PATHS}
        return {
            "low_rate_facade_added_p50_ms": low["facade"].p50_ms - low["direct"].p50_ms,
            "low_rate_facade_added_p99_ms": low["facade"].p99_ms - low["direct"].p99_ms,
            "low_rate_nginx_added_p50_ms": low["nginx"].p50_ms - low["direct"].p50_ms,
            "low_rate_floor_added_p50_ms": low["floor"].p50_ms - low["direct"].p50_ms,
        }

    def targets(self) -> list[Target]:
        """Return the issue's targets, each with what this run measured."""
        r, slow = self.ratios(), self.get("slow_legacy", "facade").load
        rate = self.config["rate"]
        return [
            Target("facade saturation throughput / nginx's", r["facade_over_nginx_rps"], 0.35, True, "x"),
            Target(f"p50 added by the facade at {rate:g} req/s", r["facade_added_p50_ms"], 1.5, False, "ms"),
            Target(f"p99 added by the facade at {rate:g} req/s", r["facade_added_p99_ms"], 10.0, False, "ms"),
            Target("slow legacy: facade throughput", slow.rps, 800.0, True, "req/s"),
            Target("slow legacy: facade p99", slow.p99_ms, 150.0, False, "ms"),
            *self._off_core_targets(),
            Target("no failed requests in any run", sum(m.load.errors for m in self.runs), 0, False, ""),
        ]

    def _off_core_targets(self) -> list[Target]:
        """The slow-legacy targets again, with the legacy's cost off these cores (the zero-CPU stand-in)."""
        if not any(m.scenario == "slow_off_core" for m in self.runs):
            return []
        off = self.get("slow_off_core", "facade_stub").load
        return [
            Target("legacy off these cores (stand-in): facade throughput", off.rps, 800.0, True, "req/s"),
            Target("legacy off these cores (stand-in): facade p99", off.p99_ms, 150.0, False, "ms"),
        ]

    def as_dict(self) -> dict[str, Any]:
        """Return the whole run as plain JSON-ready values."""
        return {
            "config": self.config,
            "machine": self.machine,
            "runs": [m.as_dict() for m in self.runs],
            "ratios": {k: round(v, 3) for k, v in self.ratios().items()},
            "targets": [t.as_dict() for t in self.targets()],
            "profiles": self.profiles,
            "parts_cpu_us_per_call": self.parts,
        }

    def save(self, path: Path) -> None:
        """Write the run as JSON to `path` (parents created)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n")

    def print(self, console: Console) -> None:
        """Print the figures, the ratios, the targets and the profile summaries."""
        table = Table(
            title="Balance inquiry: direct vs nginx vs python floor vs facade (loopback, same legacy server; "
            "slow_off_core: a zero-CPU legacy stand-in)"
        )
        for column in ("scenario", "path", "req/s", "p50 ms", "p99 ms", "errors", "CPU ms/req: facade",
                       "floor", "legacy", "postgres", "nginx", "loadgen", "path", "cores busy",
                       "of which others"):  # fmt: skip
            table.add_column(column, justify="left" if column in ("scenario", "path") else "right")
        for m in self.runs:
            # The second facade counts as the facade, the legacy stand-in as the legacy.
            per = {c: m.cpu_ms_per_request(c) for c in ("facade", "floor", "legacy", "postgres", "nginx", "loadgen")}
            per["facade"] += m.cpu_ms_per_request("facade_stub")
            per["legacy"] += m.cpu_ms_per_request("stub")
            cpu = [f"{ms:.2f}" for ms in per.values()]
            table.add_row(m.scenario, m.path, f"{m.load.rps:,.0f}", f"{m.load.p50_ms:.2f}", f"{m.load.p99_ms:.2f}",
                          str(m.load.errors), *cpu, f"{m.path_cpu_ms:.2f}", f"{m.machine_busy_s / m.wall_s:.2f}",
                          f"{m.others_cores:.2f}")  # fmt: skip
        console.print(table)
        for m in self.runs:
            where = f"{m.scenario}/{m.path}"
            if m.scenario == "fixed_rate" and m.load.rps < 0.95 * self.config["rate"]:
                console.print(f"  note: {where} kept up only {m.load.rps:.0f} of {self.config['rate']:g} req/s offered")
            if m.others_cores > 0.25:
                console.print(f"  note: other processes kept {m.others_cores:.2f} cores busy during {where}")
        for name, value in self.ratios().items():
            console.print(f"  {name:<26} {value:8.2f}")
        checks = Table(title="Targets")
        for column in ("target", "measured", "limit", "result"):
            checks.add_column(column)
        for t in self.targets():
            limit = f"{'>=' if t.at_least else '<='} {t.limit:g} {t.unit}"
            checks.add_row(t.name, f"{t.value:.2f} {t.unit}", limit, "PASS" if t.met else "FAIL")
        console.print(checks)
        for name, prof in self.profiles.items():
            console.print(f"\nProfile '{name}': {prof['note']}")
            us = prof["categories_us_per_request"]
            for category, share in prof["categories"].items():
                console.print(f"  {share:6.1%}  ~{us[category]:5d} us/req  {category}")
            console.print("  top functions (self):")
            for func, share in prof["top_self"][:10]:
                console.print(f"  {share:6.1%}  {func}")
        if self.parts:
            console.print("\nCPU per call in one thread of this process (microseconds):")
            for name, us in self.parts.items():
                console.print(f"  {us:8.1f}  {name}")


def _first_line(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    except OSError as exc:
        return f"unavailable ({exc})"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr).strip() else ""


def describe_machine() -> dict[str, Any]:
    """Return the facts that make the figures comparable: CPUs, memory, kernel, and every tool's version."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem_kb = re.search(r"^MemTotal:\s+(\d+)", meminfo, re.MULTILINE)
    return {
        "nproc": _first_line(["nproc"]),
        "cpu_model": model.group(1) if model else platform.processor(),
        "memory_gib": round(int(mem_kb.group(1)) / 2**20, 1) if mem_kb else None,
        "kernel": platform.release(),
        "os": _first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": sys.version.split()[0],
        "gunicorn": metadata.version("gunicorn"),
        "flask": metadata.version("flask"),
        "requests": metadata.version("requests"),
        "nginx": _first_line(["nginx", "-v"]),
        "wrk": _first_line(["wrk", "-v"]),
        "hey": _first_line(["dpkg-query", "-W", "-f=${Version}", "hey"]),
        "postgresql": _first_line(["sh", "-c", "ls /usr/lib/postgresql | sort -V | tail -1"]),
    }
