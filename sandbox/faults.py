"""Run-time fault injection settings shared by every worker of a service through one JSON file."""

from __future__ import annotations

import enum
import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

log = logging.getLogger(__name__)

# Never faulted, whatever `paths` says: the switch itself and the health probe must keep working.
EXEMPT_PREFIXES = ("/__admin/", "/healthz")
MAX_HANG_S = 300.0


class FaultSpecError(ValueError):
    """A fault setting was refused; the message names the field and the reason."""


class Injection(enum.Enum):
    """What the fault layer does to one request before the application sees it."""

    NONE = "none"
    ERROR = "error"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class Faults:
    """One complete fault setting; the defaults inject nothing."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 503
    timeout_rate: float = 0.0
    commit_timeout_rate: float = 0.0
    hang_s: float = 10.0
    paths: tuple[str, ...] = ("/CBS/",)

    def to_json(self) -> dict[str, object]:
        """Return the setting as the JSON object the admin API shows."""
        body = asdict(self)
        body["paths"] = list(self.paths)
        return body

    def applies_to(self, path: str) -> bool:
        """Return whether `path` is subject to this setting: it starts with an entry of `paths`, or equals an
        entry written with a trailing `$` (so "/CBS/PAYMT$" spares "/CBS/PAYMT/INQ")."""
        if path.startswith(EXEMPT_PREFIXES):
            return False
        return any(path == p[:-1] if p.endswith("$") else path.startswith(p) for p in self.paths)


def _number(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FaultSpecError(f"{name} must be a number, got {value!r}")
    if not low <= value <= high:
        raise FaultSpecError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return float(value)


def parse_faults(overrides: Mapping[str, object], defaults: Faults) -> Faults:
    """Return `defaults` with `overrides` applied, or raise FaultSpecError naming the first bad field."""
    unknown = sorted(set(overrides) - set(Faults.__dataclass_fields__))
    if unknown:
        raise FaultSpecError(f"unknown fault field(s): {', '.join(unknown)}")
    changes: dict[str, object] = {}
    for name in ("error_rate", "timeout_rate", "commit_timeout_rate"):
        if name in overrides:
            changes[name] = _number(name, overrides[name], 0.0, 1.0)
    if "latency_ms" in overrides:
        changes["latency_ms"] = _number("latency_ms", overrides["latency_ms"], 0.0, MAX_HANG_S * 1000)
    if "hang_s" in overrides:
        changes["hang_s"] = _number("hang_s", overrides["hang_s"], 0.0, MAX_HANG_S)
    if "error_status" in overrides:
        status = overrides["error_status"]
        if isinstance(status, bool) or not isinstance(status, int) or not 500 <= status <= 599:
            raise FaultSpecError(f"error_status must be an integer 500..599, got {status!r}")
        changes["error_status"] = status
    if "paths" in overrides:
        paths = overrides["paths"]
        if not isinstance(paths, list) or not all(isinstance(p, str) and p.startswith("/") for p in paths):
            raise FaultSpecError(f"paths must be a list of strings starting with '/', got {paths!r}")
        changes["paths"] = tuple(paths)
    return replace(defaults, **changes)  # type: ignore[arg-type]


class FaultSwitch:
    """The current fault setting of a service, persisted in `path` so every worker process sees each change.

    Each request costs one stat(); the file is re-read only when its identity (mtime, inode, size) changed.
    Without a path the setting lives in this process only (for in-process tests).
    """

    def __init__(
        self,
        path: Path | None,
        defaults: Faults,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.path = path
        self.defaults = defaults
        self._sleep = sleep
        self._fixed_rng = rng
        self._rng: random.Random | None = None
        self._rng_pid = -1
        self._lock = threading.Lock()
        self._faults = defaults
        self._signature: tuple[int, int, int] | None = None

    def _random(self) -> float:
        if self._fixed_rng is not None:
            return self._fixed_rng.random()
        # One generator per process, made after any fork so gunicorn workers do not roll identical dice.
        if self._rng is None or self._rng_pid != os.getpid():
            self._rng = random.Random(os.urandom(16))
            self._rng_pid = os.getpid()
        return self._rng.random()

    def current(self) -> Faults:
        """Return the active setting, re-reading the shared file only if it changed since the last look."""
        if self.path is None:
            return self._faults
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return self.defaults
        signature = (st.st_mtime_ns, st.st_ino, st.st_size)
        if signature == self._signature:
            return self._faults
        with self._lock:
            if signature != self._signature:
                try:
                    loaded = json.loads(self.path.read_text())
                    self._faults = parse_faults(loaded, self.defaults)
                except (OSError, ValueError) as exc:
                    # A hand-edited, broken file must not take the service down: keep the last good setting.
                    log.warning("ignoring unreadable faults file %s: %s", self.path, exc)
                self._signature = signature
            return self._faults

    def set(self, faults: Faults) -> Faults:
        """Make `faults` the active setting for every worker sharing the file, and return it."""
        with self._lock:
            self._faults = faults
            if self.path is None:
                return faults
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(faults.to_json()))
            # Atomic rename: a worker reading concurrently sees the old or the new file, never half of one.
            os.replace(tmp, self.path)
            st = os.stat(self.path)
            self._signature = (st.st_mtime_ns, st.st_ino, st.st_size)
            return faults

    def reset(self) -> Faults:
        """Switch every fault off again."""
        return self.set(self.defaults)

    def on_request(self, path: str) -> tuple[Injection, Faults]:
        """Apply the latency for `path`, then roll the dice: return what to do instead of serving the request."""
        faults = self.current()
        if not faults.applies_to(path):
            return Injection.NONE, faults
        if faults.latency_ms > 0:
            self._sleep(faults.latency_ms / 1000.0)
        if faults.error_rate > 0 and self._random() < faults.error_rate:
            return Injection.ERROR, faults
        if faults.timeout_rate > 0 and self._random() < faults.timeout_rate:
            return Injection.TIMEOUT, faults
        return Injection.NONE, faults

    def after_commit(self, path: str) -> Faults | None:
        """Roll for a commit timeout on `path`, whose work is already committed; return the setting if it hit."""
        faults = self.current()
        if faults.applies_to(path) and faults.commit_timeout_rate > 0 and self._random() < faults.commit_timeout_rate:
            return faults
        return None

    def hang(self, faults: Faults) -> None:
        """Block for the setting's hang time, as a stuck backend would."""
        self._sleep(faults.hang_s)
