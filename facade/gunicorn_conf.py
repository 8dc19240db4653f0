"""gunicorn hooks for the facade: dead workers' live gauges leave /metrics, and the metrics directory goes at exit."""

from __future__ import annotations

import os
import shutil
from typing import Any

from prometheus_client import multiprocess


def child_exit(server: Any, worker: Any) -> None:
    """Forget the exited worker's live gauges (breaker state, route version)."""
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """Remove the per-run metrics directory that `strangler serve` created."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if os.path.basename(directory).startswith("strangler-metrics-"):
        shutil.rmtree(directory, ignore_errors=True)
