"""Sample gunicorn workers with py-spy (GIL holder only) and say where the interpreter's time goes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")

# Owners of a sample, by file path; a sample belongs to the innermost frame whose file matches one of these
# (stdlib helpers such as socket, json, re or typing are charged to whoever called them).
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("logging: JSON access log (logging, python-json-logger)", ("logging/", "pythonjsonlogger/", "facade/logs.py")),
    ("metrics: prometheus_client (multiprocess mmap files)", ("prometheus_client/",)),
    ("retries: tenacity", ("tenacity/",)),
    ("upstream client: requests", ("requests/",)),
    ("upstream client: urllib3, http.client, email headers", ("urllib3/", "http/client.py", "email/")),
    ("circuit breaker", ("connectors/breaker.py",)),
    (
        "server: gunicorn (parse, poll, thread pool, core/worker.py)",
        ("gunicorn/", "core/worker.py", "concurrent/futures/", "selectors.py"),
    ),
    ("facade, connectors and core code", ("facade/", "connectors/", "core/")),
    ("web framework: Flask, Werkzeug", ("flask/", "werkzeug/")),
)
OTHER = "other (threading, interpreter start-up)"


def frame_key(frame: str) -> tuple[str, str]:
    """Return (function, file) of one py-spy frame, without its line number."""
    match = _FRAME.match(frame)
    return (match.group("func"), match.group("file")) if match else (frame, "")


def category_of(stack: Sequence[tuple[str, str]]) -> str:
    """Return the category of a sample: the innermost frame (last in `stack`) whose file a category names."""
    for _, path in reversed(stack):
        for name, prefixes in CATEGORIES:
            if any(path.startswith(prefix) or f"/{prefix}" in path for prefix in prefixes):
                return name
    return OTHER


@dataclass
class Profile:
    """Aggregated samples: per category, per function (self and inclusive), and the sample count."""

    samples: int = 0
    categories: Counter[str] = field(default_factory=Counter)
    self_time: Counter[tuple[str, str]] = field(default_factory=Counter)
    inclusive: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add_raw(self, lines: Iterable[str]) -> None:
        """Add py-spy `--format raw` lines (`frame;frame;... count`, outermost first)."""
        for line in lines:
            stack_text, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack_text or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [frame_key(f) for f in stack_text.split(";") if not f.startswith(("process ", "thread "))]
            if not frames:
                continue
            self.samples += count
            self.categories[category_of(frames)] += count
            self.self_time[frames[-1]] += count
            for key in set(frames):
                self.inclusive[key] += count

    def share(self, count: int) -> float:
        """Return a count as a share of all samples."""
        return count / self.samples if self.samples else 0.0

    def summary(self, top: int = 15) -> dict[str, Any]:
        """Return the JSON-ready summary: categories, top self functions, top inclusive functions below the roots."""

        def named(key: tuple[str, str]) -> str:
            return f"{key[0]} ({key[1]})"

        inclusive = [(k, n) for k, n in self.inclusive.most_common() if self.share(n) < 0.6]
        return {
            "samples": self.samples,
            "categories": {name: round(self.share(n), 4) for name, n in self.categories.most_common()},
            "top_self": [[named(k), round(self.share(n), 4)] for k, n in self.self_time.most_common(top)],
            "top_inclusive": [[named(k), round(self.share(n), 4)] for k, n in inclusive[: top * 2]],
        }


def py_spy() -> str:
    """Return the py-spy executable next to this interpreter, else the one on PATH, else raise."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise FileNotFoundError("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


def start_recording(pids: Sequence[int], seconds: float, out_dir: Path, rate: int = 100) -> list[subprocess.Popen[str]]:
    """Start one `py-spy record --gil --nonblocking` per pid for `seconds`, writing raw stacks into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    for pid in pids:
        output = str(out_dir / f"{pid}.txt")
        argv = [py_spy(), "record", "--pid", str(pid), "--gil", "--nonblocking", "--rate", str(rate),
                "--duration", str(max(1, round(seconds))), "--format", "raw", "--output", output]  # fmt: skip
        procs.append(
            subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        )
    return procs


def finish_recording(procs: Sequence[subprocess.Popen[str]], out_dir: Path, timeout: float = 60) -> Profile:
    """Wait for the recorders, then merge their files into one Profile; raise if a recorder failed."""
    profile = Profile()
    for proc in procs:
        out, _ = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"py-spy failed ({proc.returncode}): {out[-2000:]}")
    for path in sorted(out_dir.glob("*.txt")):
        profile.add_raw(path.read_text().splitlines())
    return profile
