"""Benchmark the facade against the legacy balance endpoint called directly, through nginx and through a bare Python
pass-through under the facade's own server (the floor of the mandated stack), in one run.

Run from the repository root: `.venv/bin/python bench/facade.py` (or `make bench`). Prints a table with ratios and
PASS/FAIL per target and writes the figures as JSON into bench/results/.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script, Python puts bench/ on the path, not the repository

import click  # noqa: E402
import requests  # noqa: E402
from rich.console import Console  # noqa: E402

from bench.cpu import CpuMeter, children_map, machine_busy_seconds  # noqa: E402
from bench.loadgen import LoadResult, run_hey_paced, run_wrk  # noqa: E402
from bench.nginx import NginxProxy  # noqa: E402
from bench.parts import measure_parts  # noqa: E402
from bench.profile import finish_recording, start_recording  # noqa: E402
from bench.report import PATHS, Measured, Run, combine_runs, describe_machine  # noqa: E402
from cli.stack import Stack, StackOptions  # noqa: E402
from core.pgcluster import free_port  # noqa: E402
from core.procs import Service, gunicorn_argv, start_service  # noqa: E402
from core.worker import WORKER_CLASS  # noqa: E402

LEGACY_BALANCE = "/CBS/ACCT/BAL?ACCTNO=0000000001"
FACADE_BALANCE = "/v1/accounts/1/balance"
SLOW_PATHS = ("direct", "floor", "facade")
OFF_CORE_PATHS = ("stub", "facade_stub")  # the zero-CPU legacy stand-in, directly and through a facade in front of it
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def log(line: str) -> None:
    """Print one progress line with the time."""
    console.print(f"[dim]{datetime.now():%H:%M:%S}[/dim] {line}")


def raise_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so `with` blocks stop every process this run started."""

    def handler(signum: int, frame: object) -> NoReturn:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def check_answers(url: str, headers: Mapping[str, str], expect: str) -> None:
    """Raise unless GET url answers 200 with `expect` in its body."""
    response = requests.get(url, headers=dict(headers), timeout=5)
    if response.status_code != 200 or expect not in response.text:
        raise RuntimeError(f"GET {url} answered {response.status_code}: {response.text[:300]}")


def process_env(pid: int, name: str) -> str | None:
    """Return one environment variable of a running process, None if unset or unreadable."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    for entry in raw.split(b"\0"):
        key, _, value = entry.decode(errors="replace").partition("=")
        if key == name:
            return value
    return None


def set_legacy_latency(legacy_url: str, latency_ms: float) -> None:
    """Make every legacy worker answer /CBS/ calls `latency_ms` late (0 removes every fault)."""
    if latency_ms:
        response = requests.put(f"{legacy_url}/__admin/faults", json={"latency_ms": latency_ms}, timeout=5)
    else:
        response = requests.delete(f"{legacy_url}/__admin/faults", timeout=5)
    response.raise_for_status()


class Bench:
    """One benchmark run over a started stack and nginx: measures, profiles, and collects the figures."""

    def __init__(self, stack: Stack, proxy: NginxProxy, floor: Service, opts: dict[str, Any], record: Run) -> None:
        self.stack, self.proxy, self.opts, self.record = stack, proxy, opts, record
        auth = {"Authorization": f"Bearer {stack.api_key}"}
        self.targets: dict[str, tuple[str, dict[str, str]]] = {
            "direct": (stack.urls["legacy"] + LEGACY_BALANCE, {}),
            "nginx": (proxy.url + LEGACY_BALANCE, {}),
            "floor": (floor.url + LEGACY_BALANCE, {}),
            "facade": (stack.urls["facade"] + FACADE_BALANCE, auth),
        }
        cluster = stack.cluster
        assert cluster is not None
        self.meter = CpuMeter(
            {
                "facade": lambda: stack.services["facade"].proc.pid,
                "legacy": lambda: stack.services["legacy"].proc.pid,
                "postgres": lambda: cluster.pid,
                "nginx": lambda: proxy.pid,
                "floor": lambda: floor.proc.pid,
            }
        )

    def measure(self, scenario: str, path: str, run: Callable[[str, dict[str, str]], LoadResult]) -> Measured:
        """Run one load against one path after a settle, with CPU accounting around it."""
        url, headers = self.targets[path]
        time.sleep(self.opts["settle_s"])
        before, busy, started = self.meter.snapshot(), machine_busy_seconds(), time.monotonic()
        load = run(url, headers)
        wall = time.monotonic() - started
        cpu = CpuMeter.delta(before, self.meter.snapshot())
        return Measured(scenario, path, load, cpu, machine_busy_seconds() - busy, wall)

    def interleaved(
        self, scenario: str, paths: tuple[str, ...], run: Callable[[str, dict[str, str]], LoadResult], rounds: int
    ) -> None:
        """Measure the paths in turn, `rounds` times, so that noise from other processes falls on all of them alike."""
        taken: dict[str, list[Measured]] = {path: [] for path in paths}
        self.wait_quiet()
        for _ in range(rounds):
            for path in paths:
                taken[path].append(self.measure(scenario, path, run))
        for path in paths:
            m = combine_runs(taken[path])
            self.record.runs.append(m)
            facade_ms = m.cpu_ms_per_request("facade") + m.cpu_ms_per_request("facade_stub")  # either facade
            log(f"  {scenario:<11} {path:<7} {m.load.rps:8,.0f} req/s  p50 {m.load.p50_ms:7.2f} ms  "
                f"p99 {m.load.p99_ms:7.2f} ms  errors {m.load.errors}  facade CPU {facade_ms:.2f} ms/req")  # fmt: skip

    def wait_quiet(self) -> None:
        """Wait (up to `quiet_wait_s`) while processes outside the run keep more than `quiet_cores` busy."""
        deadline = time.monotonic() + self.opts["quiet_wait_s"]
        while True:
            before, busy = self.meter.snapshot(), machine_busy_seconds()
            time.sleep(1.0)
            ours = sum(CpuMeter.delta(before, self.meter.snapshot()).values())
            others = machine_busy_seconds() - busy - ours
            if others <= self.opts["quiet_cores"]:
                return
            if time.monotonic() > deadline:
                log(f"  (other processes still use {others:.2f} cores; measuring anyway)")
                return

    def wrk(self, seconds: float, connections: int, threads: int) -> Callable[[str, dict[str, str]], LoadResult]:
        """Return a wrk run with these settings, for `measure`."""
        return lambda url, headers: run_wrk(url, seconds, connections, threads, headers)

    def warm(self, path: str, seconds: float, connections: int, threads: int) -> None:
        """Drive a path for a few seconds without recording anything."""
        url, headers = self.targets[path]
        run_wrk(url, seconds, connections, threads, headers)

    def saturation(self) -> None:
        """Throughput at saturation (wrk) for each path, after a warm-up of each."""
        o, rounds = self.opts, self.opts["rounds"]
        seconds = o["saturation_s"] / rounds
        log(f"saturation: wrk -t{o['wrk_threads']} -c{o['connections']}, {rounds} x {seconds:g} s per path")
        for path in PATHS:
            self.warm(path, o["warmup_s"], o["connections"], o["wrk_threads"])
        self.interleaved("saturation", PATHS, self.wrk(seconds, o["connections"], o["wrk_threads"]), rounds)

    def fixed_rate(self) -> None:
        """Latency at a fixed offered rate (staggered hey -q clients) for each path."""
        o, rounds = self.opts, self.opts["rounds"]
        seconds = o["fixed_s"] / rounds
        log(f"fixed rate: {o['rate']:g} req/s from {o['hey_clients']} hey clients, {rounds} x {seconds:g} s per path")
        self.interleaved(
            "fixed_rate",
            PATHS,
            lambda url, headers: run_hey_paced(url, o["rate"], seconds, o["hey_clients"], headers),
            rounds,
        )

    def low_rate(self) -> None:
        """Latency with no queueing: one hey client at a low rate, for the cost of each hop on its own."""
        o, rounds = self.opts, self.opts["rounds"]
        seconds = o["low_s"] / rounds
        log(f"low rate: {o['low_rate']:g} req/s from 1 hey client, {rounds} x {seconds:g} s per path")
        self.interleaved(
            "low_rate", PATHS, lambda url, headers: run_hey_paced(url, o["low_rate"], seconds, 1, headers), rounds
        )

    def slow_legacy(self) -> None:
        """The realistic case: legacy answers `slow_ms` late, `slow_connections` clients, direct and via the facade."""
        o, rounds = self.opts, self.opts["rounds"]
        seconds, conns = o["slow_s"] / rounds, o["slow_connections"]
        log(f"slow legacy: latency fault {o['slow_ms']:g} ms, wrk -t2 -c{conns}, {rounds} x {seconds:g} s per path")
        set_legacy_latency(self.stack.urls["legacy"], o["slow_ms"])
        try:
            for path in SLOW_PATHS:
                self.warm(path, o["warmup_s"], conns, 2)
            self.interleaved("slow_legacy", SLOW_PATHS, self.wrk(seconds, conns, 2), rounds)
            if o["profile_s"]:
                self.profile("slow_legacy", conns, 2)
        finally:
            set_legacy_latency(self.stack.urls["legacy"], 0)

    def slow_off_core(self, stub: Service, facade: Service) -> None:
        """The realistic case with the legacy's own cost off these cores: a stand-in answers `slow_ms` late for next
        to no CPU (bench/stublegacy.py), called directly and through a second facade whose legacy upstream it is."""
        o, rounds = self.opts, self.opts["rounds"]
        seconds, conns = o["offcore_s"] / rounds, o["slow_connections"]
        self.targets["stub"] = (stub.url + LEGACY_BALANCE, {})
        self.targets["facade_stub"] = (facade.url + FACADE_BALANCE, self.targets["facade"][1])
        roots = {"stub": lambda: stub.proc.pid, "facade_stub": lambda: facade.proc.pid}
        self.meter = CpuMeter({**self.meter.roots, **roots})
        log(f"legacy off these cores: stand-in {o['slow_ms']:g} ms late, wrk -t2 -c{conns}, {rounds} x {seconds:g} s")
        for path in OFF_CORE_PATHS:
            self.warm(path, o["warmup_s"], conns, 2)
        self.interleaved("slow_off_core", OFF_CORE_PATHS, self.wrk(seconds, conns, 2), rounds)

    def parts(self) -> None:
        """Measure the CPU per call of the whole facade app and of its building blocks, in this process."""
        log("in-process CPU per call of the facade app and its parts (one thread, no gunicorn)")
        self.wait_quiet()
        headers = self.targets["facade"][1]
        self.record.parts = measure_parts(
            self.stack.urls["legacy"], LEGACY_BALANCE, self.stack.facade_env, FACADE_BALANCE, headers
        )

    def profile(self, name: str, connections: int, threads: int) -> None:
        """Sample every facade worker with py-spy while wrk drives the facade; keep the summary."""
        o, master = self.opts, self.stack.services["facade"].proc.pid
        workers = children_map().get(master, [])
        url, headers = self.targets["facade"]
        log(f"profile '{name}': py-spy --gil on facade workers {workers}, {o['profile_s']} s, wrk -c{connections}")
        self.wait_quiet()
        with ThreadPoolExecutor(1) as pool, tempfile.TemporaryDirectory(prefix="bench-pyspy-") as out:
            load = pool.submit(run_wrk, url, o["profile_s"] + 3, connections, threads, headers)
            time.sleep(1.5)
            recorders = start_recording(workers, o["profile_s"], Path(out), o["profile_rate"])
            try:
                prof = finish_recording(recorders, Path(out), timeout=o["profile_s"] + 60)
            finally:
                for proc in recorders:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
            result = load.result()
        expected = o["profile_rate"] * o["profile_s"] * len(workers)
        summary = prof.summary()
        # Shares of the GIL holder's samples, turned into CPU per request with the measured run of this scenario.
        cpu_us = 1000 * self.record.get(name, "facade").cpu_ms_per_request("facade")
        self.record.profiles[name] = {
            **summary,
            "facade_cpu_us_per_request": round(cpu_us),
            "categories_us_per_request": {k: round(v * cpu_us) for k, v in summary["categories"].items()},
            "workers": len(workers),
            "gil_held_share": round(prof.samples / expected, 3) if expected else None,
            "load_while_sampled": result.as_dict(),
            "note": f"{prof.samples} samples of the GIL holder in {len(workers)} workers "
            f"(GIL held ~{prof.samples / max(1, expected):.0%} of the time) at {result.rps:,.0f} req/s under py-spy",
        }


def start_floor(stack: Stack, opts: dict[str, Any], worker_class: str) -> Service:
    """Serve bench.floorapp under gunicorn with the facade's worker class, workers and threads, in front of legacy."""
    port = free_port()
    workers, threads = opts["facade_workers"], opts["facade_threads"]
    argv = gunicorn_argv(
        "bench.floorapp:create_app_from_env()", f"127.0.0.1:{port}", workers, threads, worker_class=worker_class
    )
    env = {"FLOOR_UPSTREAM": stack.urls["legacy"].removeprefix("http://"), "FLOOR_POOL_SIZE": str(threads)}
    return start_service("floor", argv, f"http://127.0.0.1:{port}", stack.workdir / "logs", env=env)


def start_off_core(stack: Stack, opts: dict[str, Any]) -> tuple[Service, Service]:
    """Start the legacy stand-in, answering with the sandbox legacy's real balance reply, and a second facade (same
    workers and threads as the stack's) whose legacy upstream it is; return (stand-in, facade)."""
    body = stack.workdir / "stub-balance.json"
    body.write_bytes(requests.get(stack.urls["legacy"] + LEGACY_BALANCE, timeout=5).content)
    logs, port = stack.workdir / "logs", free_port()
    argv = [sys.executable, "-m", "bench.stublegacy", "--port", str(port), "--delay-ms", str(opts["slow_ms"]),
            "--body-file", str(body)]  # fmt: skip
    stub = start_service("stub-legacy", argv, f"http://127.0.0.1:{port}", logs)
    try:
        port = free_port()
        argv = [sys.executable, "-m", "cli.main", "serve", "--bind", f"127.0.0.1:{port}",
                "--workers", str(opts["facade_workers"]), "--threads", str(opts["facade_threads"])]  # fmt: skip
        env = {**stack.facade_env, "STRANGLER_UPSTREAM_LEGACY_URL": stub.url}
        return stub, start_service("facade-stub", argv, f"http://127.0.0.1:{port}", logs, env=env)
    except BaseException:
        stub.stop()
        raise


@click.command()
@click.option("--saturation-s", default=10.0, show_default=True, help="seconds of each saturation run")
@click.option("--fixed-s", default=10.0, show_default=True, help="seconds of each fixed-rate run")
@click.option("--warmup-s", default=3.0, show_default=True, help="seconds of warm-up before each wrk run")
@click.option("--rounds", default=2, show_default=True, help="interleaved rounds sharing each scenario's seconds")
@click.option("--settle-s", default=1.0, show_default=True, help="pause before each measurement")
@click.option("--quiet-cores", default=0.3, show_default=True, help="wait while others use more cores than this")
@click.option("--quiet-wait-s", default=10.0, show_default=True, help="longest wait for a quiet machine per step")
@click.option("--connections", default=32, show_default=True, help="wrk connections at saturation")
@click.option("--wrk-threads", default=1, show_default=True, help="wrk threads at saturation")
@click.option("--rate", default=300.0, show_default=True, help="offered req/s of the fixed-rate runs")
@click.option("--hey-clients", default=5, show_default=True, help="staggered hey -c1 processes sharing the rate")
@click.option("--low-rate", default=50.0, show_default=True, help="req/s of the one-client low-rate runs")
@click.option("--low-s", default=6.0, show_default=True, help="seconds of each low-rate run (0: skip them)")
@click.option("--slow-ms", default=100.0, show_default=True, help="legacy latency fault of the realistic case")
@click.option("--slow-connections", default=100, show_default=True, help="wrk connections of the realistic case")
@click.option("--slow-s", default=10.0, show_default=True, help="seconds of each realistic-case run")
@click.option(
    "--offcore-s", default=10.0, show_default=True, help="seconds of each run with the zero-CPU stand-in (0: skip)"
)
@click.option("--profile-s", default=6.0, show_default=True, help="seconds of py-spy sampling (0: no profile)")
@click.option("--profile-rate", default=100, show_default=True, help="py-spy samples per second per worker")
@click.option("--parts/--no-parts", default=True, show_default=True, help="measure the app's parts in-process")
@click.option("--legacy-workers", default=2, show_default=True)
# Every path shares one legacy: wrk's 100 connections, nginx's, the floor's and the facade's idle pools (64 per
# worker) all hold a thread each in its lingering workers; fewer threads than connections means plain gthread.
@click.option("--legacy-threads", default=256, show_default=True)
@click.option("--facade-workers", default=2, show_default=True)
# 100 slow-case connections split unevenly between the two workers: 128 each keeps every connection on a thread.
@click.option("--facade-threads", default=128, show_default=True)
@click.option("--nginx-workers", default="1", show_default=True, help="nginx worker_processes (a number or auto)")
@click.option("--customers", default=1000, show_default=True, help="sandbox customers to seed")
@click.option("--results-dir", default=str(ROOT / "bench" / "results"), show_default=True, type=click.Path())
def main(**opts: Any) -> None:
    """Measure direct legacy, nginx in front of it and the facade in legacy mode; print targets; save JSON."""
    raise_on_sigterm()
    os.chdir(ROOT)  # the stack starts `python -m ...` services and reads routing_rules.yaml from here
    # `strangler serve` takes its worker class from the environment the stack inherits; A/B runs set it there.
    worker_class = os.environ.get("STRANGLER_WORKER_CLASS", WORKER_CLASS)
    record = Run(config={**opts, "facade_worker_class": worker_class}, machine=describe_machine())
    options = StackOptions(
        customers=opts["customers"],
        legacy_workers=opts["legacy_workers"],
        legacy_threads=opts["legacy_threads"],
        facade_workers=opts["facade_workers"],
        facade_threads=opts["facade_threads"],
        events_pipeline=False,  # the broker, relay and applier play no part in a legacy-mode read and cost CPU
        log=log,
    )
    started, leftovers = time.monotonic(), []
    try:
        with Stack(options) as stack:
            # `strangler serve` makes a prometheus directory it never removes: note it to remove it afterwards.
            leftovers.append(process_env(stack.services["facade"].proc.pid, "PROMETHEUS_MULTIPROC_DIR"))
            upstream = stack.urls["legacy"].removeprefix("http://")
            with NginxProxy(upstream, workers=opts["nginx_workers"]) as proxy:
                log(f"nginx (worker_processes {opts['nginx_workers']}) on {proxy.url} -> {upstream}")
                floor = start_floor(stack, opts, worker_class)
                try:
                    log(f"python floor (bench/floorapp.py, {worker_class}) on {floor.url} -> {upstream}")
                    bench = Bench(stack, proxy, floor, opts, record)
                    for path, (url, headers) in bench.targets.items():
                        check_answers(url, headers, '"balance"' if path == "facade" else '"RC":"00"')
                    bench.saturation()
                    bench.fixed_rate()
                    if opts["low_s"]:
                        bench.low_rate()
                    if opts["profile_s"]:
                        bench.profile("saturation", opts["connections"], opts["wrk_threads"])
                    bench.slow_legacy()
                    if opts["offcore_s"]:
                        stub, facade = start_off_core(stack, opts)
                        leftovers.append(process_env(facade.proc.pid, "PROMETHEUS_MULTIPROC_DIR"))
                        try:
                            bench.slow_off_core(stub, facade)
                        finally:
                            facade.stop()
                            stub.stop()
                    if opts["parts"]:
                        bench.parts()
                finally:
                    floor.stop()
    finally:
        for directory in filter(None, leftovers):
            shutil.rmtree(directory, ignore_errors=True)
    record.config["elapsed_s"] = round(time.monotonic() - started, 1)
    record.print(console)
    out = Path(opts["results_dir"]) / f"facade-{datetime.now():%Y%m%d-%H%M%S}.json"
    record.save(out)
    console.print(f"\nwrote {out} ({record.config['elapsed_s']} s)")


if __name__ == "__main__":
    main()
