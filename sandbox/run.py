"""Start the sandbox services under gunicorn, for the CLI, the demo and any test suite that needs a legacy or cloud."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.pgcluster import free_port
from core.procs import Service, gunicorn_argv, start_service
from sandbox.cloud import schema as cloud_schema
from sandbox.legacy import schema as legacy_schema

# The directory that holds the `sandbox` package: gunicorn children must import it whatever their cwd.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Kind:
    """One sandbox service: its gunicorn app spec and its database initialiser."""

    name: str
    app_spec: str
    init_db: Callable[[str, int], None]


LEGACY = Kind("legacy", "sandbox.legacy.app:create_app_from_env()", legacy_schema.init_db)
CLOUD = Kind("cloud", "sandbox.cloud.app:create_app_from_env()", cloud_schema.init_db)
KINDS = {kind.name: kind for kind in (LEGACY, CLOUD)}


def default_faults_file(kind: Kind, bind: str) -> Path:
    """Return the faults file a service uses when none is given: one per service kind and bind address."""
    safe_bind = bind.replace(":", "_").replace("/", "_")
    return Path(tempfile.gettempdir()) / f"sandbox-{kind.name}-faults-{safe_bind}.json"


def service_env(database_url: str, faults_file: Path) -> dict[str, str]:
    """Return the environment variables a sandbox service's `create_app_from_env()` reads."""
    python_path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {
        "SANDBOX_DATABASE_URL": database_url,
        "SANDBOX_FAULTS_FILE": str(faults_file),
        "PYTHONPATH": python_path,
    }


def serve_argv(kind: Kind, bind: str, workers: int = 2, threads: int = 16) -> list[str]:
    """Return the gunicorn argv (lingering gthread workers, `core.worker`) that serves `kind` on `bind`."""
    return gunicorn_argv(kind.app_spec, bind, workers=workers, threads=threads, extra=("--chdir", str(PROJECT_ROOT)))


def start(
    kind: Kind,
    database_url: str,
    log_dir: Path,
    faults_file: Path | None = None,
    customers: int | None = 100,
    workers: int = 2,
    threads: int = 16,
) -> Service:
    """Seed `customers` (None keeps the database as it is), start `kind` on a free loopback port, return when healthy.

    Faults start switched off: the faults file (default `log_dir/<kind>-faults.json`) is removed first.
    """
    if customers is not None:
        kind.init_db(database_url, customers)
    faults = faults_file or log_dir / f"{kind.name}-faults.json"
    faults.unlink(missing_ok=True)
    bind = f"127.0.0.1:{free_port()}"
    return start_service(
        f"sandbox-{kind.name}",
        serve_argv(kind, bind, workers, threads),
        f"http://{bind}",
        log_dir,
        env=service_env(database_url, faults),
    )


def start_legacy(
    database_url: str,
    log_dir: Path,
    faults_file: Path | None = None,
    customers: int | None = 100,
    workers: int = 2,
    threads: int = 16,
) -> Service:
    """Seed and start the legacy core-banking API under gunicorn; see `start`."""
    return start(LEGACY, database_url, log_dir, faults_file, customers, workers, threads)


def start_cloud(
    database_url: str,
    log_dir: Path,
    faults_file: Path | None = None,
    customers: int | None = 100,
    workers: int = 2,
    threads: int = 16,
) -> Service:
    """Seed and start the cloud portal API under gunicorn; see `start`."""
    return start(CLOUD, database_url, log_dir, faults_file, customers, workers, threads)
