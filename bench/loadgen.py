"""Drive Debian's `wrk` (saturation) and `hey` (fixed rate) and parse what they print into one result shape."""

from __future__ import annotations

import math
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_WRK_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_WRK_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_WRK_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", re.MULTILINE)
_WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_WRK_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


class LoadGenError(RuntimeError):
    """A load generator failed or printed something this module cannot read."""


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured: throughput, latency percentiles in ms, and failed requests."""

    tool: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    command: str

    def as_dict(self) -> dict[str, Any]:
        """Return the result as plain JSON-ready values."""
        return asdict(self)


def header_args(flag: str, headers: Mapping[str, str]) -> list[str]:
    """Return `flag "Name: value"` pairs for a command line."""
    return [arg for name, value in headers.items() for arg in (flag, f"{name}: {value}")]


def _to_ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse_wrk(text: str, command: str = "wrk") -> LoadResult:
    """Parse `wrk --latency` output; raise LoadGenError when a figure is missing."""
    percentiles = {int(p): _to_ms(v, u) for p, v, u in _WRK_PERCENTILE.findall(text)}
    rps, total = _WRK_RPS.search(text), _WRK_TOTAL.search(text)
    if rps is None or total is None or not {50, 99} <= percentiles.keys():
        raise LoadGenError(f"cannot read wrk output:\n{text}")
    non2xx = _WRK_NON2XX.search(text)
    sockets = _WRK_SOCKET.search(text)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    return LoadResult(
        tool="wrk",
        requests=int(total.group(1)),
        seconds=_to_ms(total.group(2), total.group(3)) / 1000,
        rps=float(rps.group(1)),
        p50_ms=percentiles[50],
        p99_ms=percentiles[99],
        errors=errors,
        command=command,
    )


def run_wrk(
    url: str, seconds: float, connections: int, threads: int = 1, headers: Mapping[str, str] | None = None
) -> LoadResult:
    """Saturate `url` with `connections` keep-alive connections for `seconds`; return what wrk measured."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "5s"]
    argv += [*header_args("-H", headers or {}), url]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=seconds + 30)
    if done.returncode != 0:
        raise LoadGenError(f"wrk exited with {done.returncode}: {done.stderr or done.stdout}")
    return parse_wrk(done.stdout, " ".join(argv))


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Return the nearest-rank percentile of an ascending sequence (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def parse_hey_csv(text: str) -> list[tuple[float, int]]:
    """Return (response time in ms, status code) per request from `hey -o csv` output."""
    rows = []
    for line in text.splitlines()[1:]:
        fields = line.split(",")
        if len(fields) >= 7:
            rows.append((float(fields[0]) * 1000, int(fields[6])))
    return rows


def run_hey_paced(
    url: str, rate: float, seconds: float, clients: int = 4, headers: Mapping[str, str] | None = None
) -> LoadResult:
    """Offer `rate` req/s for `seconds` from `clients` one-connection `hey -q` processes started 1/rate apart.

    One hey process with `-c N` fires its N workers on the same tick, in bursts of N; staggering single-worker
    processes spreads the arrivals evenly while each still tolerates a response up to clients/rate seconds late.
    """
    per_client = rate / clients
    argv = ["hey", "-z", f"{seconds:g}s", "-c", "1", "-q", f"{per_client:g}", "-o", "csv"]
    argv += [*header_args("-H", headers or {}), url]
    procs: list[subprocess.Popen[str]] = []
    try:
        start = time.perf_counter()
        for i in range(clients):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        rows: list[tuple[float, int]] = []
        for proc in procs:
            out, err = proc.communicate(timeout=seconds + 30)
            if proc.returncode != 0:
                raise LoadGenError(f"hey exited with {proc.returncode}: {err or out}")
            rows += parse_hey_csv(out)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if not rows:
        raise LoadGenError(f"hey measured no requests: {' '.join(argv)}")
    latencies = sorted(ms for ms, _ in rows)
    return LoadResult(
        tool="hey",
        requests=len(rows),
        seconds=seconds,
        rps=len(rows) / seconds,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        errors=sum(1 for _, status in rows if status != 200),
        command=f"{clients} x ({' '.join(argv)}), started {1000 / rate:.2f} ms apart",
    )


def combine(results: Sequence[LoadResult]) -> LoadResult:
    """Return several runs of one load as one: summed requests and time, mean p50, worst p99, summed errors."""
    if len(results) == 1:
        return results[0]
    seconds = sum(r.seconds for r in results)
    requests = sum(r.requests for r in results)
    return LoadResult(
        tool=results[0].tool,
        requests=requests,
        seconds=seconds,
        rps=requests / seconds,
        p50_ms=sum(r.p50_ms for r in results) / len(results),
        p99_ms=max(r.p99_ms for r in results),
        errors=sum(r.errors for r in results),
        command=f"{len(results)} rounds of: {results[0].command}",
    )
