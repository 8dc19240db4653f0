"""Parallel-run benchmark: what shadowing costs the caller, against legacy mode and an in-line `laboratory` experiment.

Run from the repository root: `.venv/bin/python -m bench.parallel` (or `make bench-parallel`). One throwaway stack
(PostgreSQL, sandbox legacy and cloud with latency faults, the facade) plus a `laboratory` app under gunicorn; a
fixed offered rate of GET /v1/accounts/1/balance from staggered `hey -q` clients, the paths interleaved in rounds.
Prints a table with PASS/FAIL per target and writes JSON into bench/results/.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import requests
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from bench.cpu import CpuMeter
from bench.loadgen import LoadResult, run_hey_paced
from bench.report import describe_machine
from cli.stack import Stack, StackOptions
from core.db import make_engine
from core.pgcluster import free_port
from core.procs import Service, gunicorn_argv, start_service, wait_until
from core.routestore import PostgresRouteStore
from core.rules import load_rules

ROOT = Path(__file__).resolve().parent.parent
FACADE_BALANCE = "/v1/accounts/1/balance"
CAPABILITY = "accounts.balance"
PATHS = ("legacy", "parallel", "laboratory")
TARGET = 1.10  # parallel's p50 and p99 within +10% of legacy's
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def log(line: str) -> None:
    console.print(f"[dim]{datetime.now():%H:%M:%S}[/dim] {line}")


def set_faults(url: str, latency_ms: float) -> None:
    """Make a sandbox service answer its API `latency_ms` late."""
    requests.put(f"{url}/__admin/faults", json={"latency_ms": latency_ms}, timeout=5).raise_for_status()


class Routes:
    """Switch accounts.balance between legacy and parallel, returning once every facade worker follows."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.store = PostgresRouteStore(make_engine(stack.urls["control"], pool_size=1))
        self.cap = load_rules(stack.options.rules_path).capabilities[CAPABILITY]

    def use(self, mode: str) -> None:
        if self.store.current()[CAPABILITY].mode == mode:
            return
        state = self.store.set(self.cap, mode, None, "bench", f"bench: {mode}")
        wait_until(
            lambda: self.stack.route_version_everywhere() >= state.version, 10, what="every worker to see the route"
        )


def count_comparisons(engine: sa.Engine) -> dict[str, int]:
    """Return the stored comparisons of the capability by verdict."""
    query = sa.text("SELECT verdict, count(*) FROM strangler.comparisons WHERE capability = :c GROUP BY verdict")
    with engine.connect() as conn:
        return {row[0]: int(row[1]) for row in conn.execute(query, {"c": CAPABILITY})}


def shadow_skips(facade_url: str) -> float:
    text = requests.get(facade_url + "/metrics", timeout=5).text
    return sum(float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith("strangler_shadow_skips_total"))


def start_laboratory(stack: Stack, workers: int, threads: int) -> Service:
    """Serve bench.labapp under gunicorn gthread, pointed at the stack's legacy and cloud services."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = gunicorn_argv(
        "bench.labapp:create_app_from_env()", f"127.0.0.1:{port}", workers, threads, worker_class="gthread"
    )
    env = {"LAB_LEGACY_URL": stack.urls["legacy"], "LAB_CLOUD_URL": stack.urls["cloud"]}
    return start_service("laboratory", argv, url, stack.workdir / "logs", env=env)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def combine_rounds(runs: list[LoadResult]) -> LoadResult:
    """Return the rounds of one path as one: summed requests and time, the median round's p50 and p99.

    The median, not the worst round: neighbours on the shared cores hit single rounds of any path at random.
    """
    seconds = sum(r.seconds for r in runs)
    requests_ = sum(r.requests for r in runs)
    return LoadResult(
        tool=runs[0].tool, requests=requests_, seconds=seconds, rps=requests_ / seconds,
        p50_ms=median([r.p50_ms for r in runs]), p99_ms=median([r.p99_ms for r in runs]),
        errors=sum(r.errors for r in runs), command=f"{len(runs)} rounds of: {runs[0].command}",
    )  # fmt: skip


def load_average() -> float:
    """The 1-minute load average: how busy the shared machine was around a measurement."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def ratio(value: float, base: float) -> float:
    return value / base if base else float("inf")


def print_table(results: dict[str, LoadResult], opts: dict[str, Any], extra: dict[str, Any]) -> None:
    base = results["legacy"]
    table = Table(title=f"GET {FACADE_BALANCE} at {opts['rate']:g} req/s offered "
                        f"(legacy +{opts['legacy_ms']:g} ms, cloud +{opts['cloud_ms']:g} ms)")  # fmt: skip
    for column in ("path", "req/s", "p50 ms", "p99 ms", "p50 vs legacy", "p99 vs legacy", "errors", "target"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for path in PATHS:
        r = results[path]
        p50, p99 = ratio(r.p50_ms, base.p50_ms), ratio(r.p99_ms, base.p99_ms)
        target = "-"
        if path == "parallel":
            target = "PASS" if p50 <= TARGET and p99 <= TARGET else "FAIL"
        table.add_row(
            {"legacy": "facade, legacy mode", "parallel": "facade, parallel mode", "laboratory": "laboratory"}[path],
            f"{r.rps:,.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", f"{p50:.2f}x", f"{p99:.2f}x", str(r.errors), target,
        )  # fmt: skip
    console.print(table)
    console.print(
        f"parallel runs: {extra['comparisons']} comparisons stored {extra['verdicts']}, "
        f"{extra['skipped']:.0f} shadows skipped; laboratory (one worker's count): {extra['laboratory']}"
    )
    for path, spent in extra["cpu_ms_per_request"].items():
        parts = ", ".join(f"{name} {ms:.2f}" for name, ms in spent.items() if name != "loadgen")
        console.print(f"CPU ms per request, {path}: {parts}")


@click.command()
# 60 req/s keeps this 2-core box below ~50% busy even in parallel mode, where the sandbox cloud service answering the
# shadow runs on the same cores (in production it has its own); BENCHMARKS.md also has 100 and 150 req/s figures.
@click.option("--rate", default=60.0, show_default=True, help="offered req/s (open loop, staggered hey -q clients)")
@click.option("--seconds", default=40.0, show_default=True, help="seconds per path, split over the rounds")
@click.option("--rounds", default=5, show_default=True, help="interleaved rounds (legacy, parallel, laboratory)")
@click.option("--hey-clients", default=10, show_default=True, help="one-connection hey processes sharing the rate")
@click.option("--warmup-s", default=3.0, show_default=True)
@click.option("--legacy-ms", default=10.0, show_default=True, help="latency fault on the legacy core")
@click.option("--cloud-ms", default=20.0, show_default=True, help="latency fault on the cloud service (the shadow)")
@click.option("--facade-workers", default=2, show_default=True)
@click.option("--facade-threads", default=32, show_default=True)
@click.option("--shadow-workers", default=4, show_default=True, help="STRANGLER_SHADOW_WORKERS of the facade")
@click.option("--customers", default=1000, show_default=True)
@click.option("--results-dir", default=str(ROOT / "bench" / "results"), show_default=True, type=click.Path())
def main(**opts: Any) -> None:
    """Measure the facade in legacy and parallel mode and a laboratory experiment at one offered rate."""
    options = StackOptions(
        customers=opts["customers"], facade_workers=opts["facade_workers"], facade_threads=opts["facade_threads"],
        legacy_workers=2, legacy_threads=32, cloud_workers=2, cloud_threads=32, events_pipeline=False,
        replication=False, extra_env={"STRANGLER_SHADOW_WORKERS": str(opts["shadow_workers"])},
        rules_path=ROOT / "routing_rules.yaml", log=log,
    )  # fmt: skip
    started = time.monotonic()
    taken: dict[str, list[LoadResult]] = {path: [] for path in PATHS}
    with Stack(options) as stack:
        lab = start_laboratory(stack, 2, 32)
        try:
            set_faults(stack.urls["legacy"], opts["legacy_ms"])
            set_faults(stack.urls["cloud"], opts["cloud_ms"])
            routes = Routes(stack)
            control = make_engine(stack.urls["control"], pool_size=1)
            auth = {"Authorization": f"Bearer {stack.api_key}"}
            targets: dict[str, tuple[str, dict[str, str], Callable[[], None]]] = {
                "legacy": (stack.urls["facade"] + FACADE_BALANCE, auth, lambda: routes.use("legacy")),
                "parallel": (stack.urls["facade"] + FACADE_BALANCE, auth, lambda: routes.use("parallel")),
                "laboratory": (lab.url + FACADE_BALANCE, {}, lambda: None),
            }
            seconds = opts["seconds"] / opts["rounds"]
            meter = CpuMeter({
                "facade": lambda: stack.services["facade"].proc.pid,
                "legacy": lambda: stack.services["legacy"].proc.pid,
                "cloud": lambda: stack.services["cloud"].proc.pid,
                "laboratory": lambda: lab.proc.pid,
            })  # fmt: skip
            cpu: dict[str, dict[str, float]] = {path: {} for path in PATHS}
            for path, (url, headers, prepare) in targets.items():
                prepare()
                log(f"warm-up {path}: {opts['warmup_s']:g} s")
                run_hey_paced(url, opts["rate"], opts["warmup_s"], opts["hey_clients"], headers)
            before, skips_before = count_comparisons(control), shadow_skips(stack.urls["facade"])
            for round_no in range(opts["rounds"]):
                for path, (url, headers, prepare) in targets.items():
                    prepare()
                    time.sleep(1.0)  # let the previous run's queued shadows finish
                    snap = meter.snapshot()
                    result = run_hey_paced(url, opts["rate"], seconds, opts["hey_clients"], headers)
                    for name, spent in CpuMeter.delta(snap, meter.snapshot()).items():
                        cpu[path][name] = cpu[path].get(name, 0.0) + spent
                    taken[path].append(result)
                    log(f"round {round_no + 1} {path:<10} {result.rps:7.1f} req/s  p50 {result.p50_ms:6.2f} ms  "
                        f"p99 {result.p99_ms:7.2f} ms  errors {result.errors}  load {load_average():.2f}")  # fmt: skip
            time.sleep(2.0)
            after = count_comparisons(control)
            verdicts = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
            extra = {
                "comparisons": sum(verdicts.values()),
                "verdicts": verdicts,
                "skipped": shadow_skips(stack.urls["facade"]) - skips_before,
                "laboratory": requests.get(lab.url + "/healthz", timeout=5).json(),
                "cpu_ms_per_request": {
                    path: {
                        name: round(1000 * spent / max(1, sum(r.requests for r in taken[path])), 3)
                        for name, spent in cpu[path].items()
                    }
                    for path in PATHS
                },
            }
        finally:
            lab.stop()
    results = {path: combine_rounds(runs) for path, runs in taken.items()}
    print_table(results, opts, extra)
    record = {
        "config": {**opts, "elapsed_s": round(time.monotonic() - started, 1)},
        "machine": describe_machine(),
        "results": {path: r.as_dict() for path, r in results.items()},
        "rounds": {path: [r.as_dict() for r in runs] for path, runs in taken.items()},
        "shadows": extra,
    }
    out = Path(opts["results_dir"]) / f"parallel-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, default=str))
    console.print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
