"""Start and stop child service processes (gunicorn and friends) on loopback, waiting on their health URL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from core.worker import WORKER_CLASS


class ServiceError(RuntimeError):
    """A child service did not become healthy, with the tail of its log."""


@dataclass
class Service:
    """One child process group serving `url`; `stop()` ends the whole group."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Signal the process group and wait for it; escalate to SIGKILL after `timeout` seconds."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL the whole process group at once (a crash, not a shutdown)."""
        self.stop(signal.SIGKILL)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = "condition") -> None:
    """Poll `predicate` until it is true; raise TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def _healthy(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def start_service(
    name: str,
    argv: Sequence[str],
    url: str,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    health_path: str = "/healthz",
    timeout: float = 30.0,
) -> Service:
    """Start `argv` in its own process group and return once GET url+health_path answers 200, else raise."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    full_env = {**os.environ, **(env or {})}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True)
    service = Service(name=name, url=url, proc=proc, log_path=log_path)
    try:
        wait_until(lambda: not service.alive() or _healthy(url + health_path), timeout, what=f"{name} health")
    except TimeoutError:
        service.stop()
        raise ServiceError(f"{name} did not become healthy in {timeout}s:\n{service.log_tail()}") from None
    if not service.alive():
        raise ServiceError(f"{name} exited with {proc.returncode}:\n{service.log_tail()}")
    return service


def gunicorn_argv(
    app_spec: str,
    bind: str,
    workers: int = 2,
    threads: int = 8,
    extra: Sequence[str] = (),
    worker_class: str = WORKER_CLASS,
) -> list[str]:
    """Return the argv that serves a WSGI app spec under gunicorn with thread-based workers (`worker_class`, by
    default the lingering gthread worker of `core.worker`)."""
    return [
        sys.executable, "-m", "gunicorn", app_spec,
        "--bind", bind,
        "--worker-class", worker_class,
        "--workers", str(workers),
        "--threads", str(threads),
        "--graceful-timeout", "5",
        "--timeout", "120",
        "--keep-alive", "30",
        "--no-control-socket",  # gunicorn 27's default socket path is shared by every instance on the machine
        *extra,
    ]  # fmt: skip
