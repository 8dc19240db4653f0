"""Periodic background work of one facade worker (route refresh, in-doubt sweep, key purge) on daemon threads."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("strangler.background")


class Periodic:
    """Run each registered task every `interval` seconds on its own daemon thread until stop(); errors are logged."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def every(self, interval: float, name: str, task: Callable[[], object]) -> None:
        """Start running `task` every `interval` seconds."""

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    task()
                except Exception:
                    log.exception("background task failed; it will run again", extra={"task": name})

        thread = threading.Thread(target=loop, name=f"strangler-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Stop every task and wait for the threads to end."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
