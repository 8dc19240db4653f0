"""The shadow side's machinery: a bounded job queue with a few worker threads, and the buffer its evidence waits in.

Nothing here runs on the caller's time except `ShadowPool.submit` and `Evidence.skip`: a `put_nowait` and a counter
increment under a lock that is never held across I/O.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from parallel_run.model import Comparison

log = logging.getLogger("strangler.shadow")
Job = Callable[[], object]
MAX_PENDING_COMPARISONS = 20_000
NOISE_CACHE_S = 5.0


class EvidenceStore(Protocol):
    """What the facade needs of the comparison store (parallel_run.store.ComparisonStore)."""

    def record(self, comparisons: Sequence[Comparison]) -> object: ...

    def add_noise(self, capability: str, paths: Iterable[str], at: datetime) -> object: ...

    def noise_paths(self, capability: str) -> frozenset[str]: ...

    def add_skips(self, capability: str, reason: str, count: int, at: datetime) -> object: ...


class ShadowPool:
    """Run jobs on `workers` daemon threads from a queue of `capacity`; `submit` never blocks, it refuses when full."""

    def __init__(self, workers: int, capacity: int, name: str = "shadow") -> None:
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=max(1, capacity))
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"strangler-{name}-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def depth(self) -> int:
        """Jobs waiting for a thread right now."""
        return self._queue.qsize()

    def submit(self, job: Job) -> bool:
        """Queue one job; return False at once (nothing queued) when the queue is full or the pool is closed."""
        if self._closed:
            return False
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            return False
        return True

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                job()
            except Exception:
                log.exception("shadow job failed")

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking jobs, let the threads finish what is queued (up to `timeout` seconds in all), and end them."""
        self._closed = True
        deadline = time.monotonic() + timeout
        for _ in self._threads:
            try:
                self._queue.put(None, timeout=max(0.01, deadline - time.monotonic()))
            except queue.Full:
                break
        for thread in self._threads:
            thread.join(timeout=max(0.01, deadline - time.monotonic()))


class Evidence:
    """Collect comparisons, learned noise and skip counts from any thread; `flush()` writes them to the store."""

    def __init__(
        self,
        store: EvidenceStore,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        max_pending: int = MAX_PENDING_COMPARISONS,
    ) -> None:
        self.store, self.clock, self.monotonic, self.max_pending = store, clock, monotonic, max_pending
        self._lock = threading.Lock()
        self._comparisons: list[Comparison] = []
        self._noise: dict[str, set[str]] = {}
        self._skips: Counter[tuple[str, str]] = Counter()
        self._known_noise: dict[str, tuple[float, frozenset[str]]] = {}
        self.dropped = 0  # comparisons thrown away because the store could not keep up

    def comparison(self, comparison: Comparison) -> None:
        """Keep one comparison for the next flush (dropped, and counted, beyond `max_pending`)."""
        with self._lock:
            if len(self._comparisons) >= self.max_pending:
                self.dropped += 1
                return
            self._comparisons.append(comparison)

    def noise(self, capability: str, paths: frozenset[str]) -> None:
        """Remember paths that differed between two answers of the primary; they count as noise from now on."""
        if not paths:
            return
        with self._lock:
            self._noise.setdefault(capability, set()).update(paths)
            cached = self._known_noise.get(capability)
            if cached is not None:  # otherwise the next noise_paths() reads the store, then adds what is learnt here
                self._known_noise[capability] = (cached[0], cached[1] | paths)

    def skip(self, capability: str, reason: str) -> None:
        """Count one call that was not compared (queue_full, not_sampled, write_not_shadowed)."""
        with self._lock:
            self._skips[(capability, reason)] += 1

    def noise_paths(self, capability: str) -> frozenset[str]:
        """Return the capability's noise paths: the store's (re-read every few seconds) and those learned here."""
        with self._lock:
            cached = self._known_noise.get(capability)
        if cached is not None and self.monotonic() - cached[0] < NOISE_CACHE_S:
            return cached[1]
        stored = self.store.noise_paths(capability)
        with self._lock:
            learned = frozenset(self._noise.get(capability, ()))
            self._known_noise[capability] = (self.monotonic(), stored | learned)
        return stored | learned

    def flush(self) -> int:
        """Write everything collected since the last flush; return how many comparisons were written.

        What could not be written is put back for the next flush (comparisons up to `max_pending`).
        """
        with self._lock:
            comparisons, self._comparisons = self._comparisons, []
            noise, self._noise = self._noise, {}
            skips, self._skips = self._skips, Counter()
        written = len(comparisons)
        at = self.clock()
        try:
            if comparisons:
                self.store.record(comparisons)
            comparisons = []
            for capability in list(noise):
                self.store.add_noise(capability, sorted(noise[capability]), at)
                del noise[capability]
            for key in list(skips):
                self.store.add_skips(key[0], key[1], skips[key], at)
                del skips[key]
        except Exception:
            self._put_back(comparisons, noise, skips)
            raise
        return written

    def _put_back(
        self, comparisons: list[Comparison], noise: dict[str, set[str]], skips: Counter[tuple[str, str]]
    ) -> None:
        """Keep what a failed flush did not write for the next one."""
        with self._lock:
            room = max(0, self.max_pending - len(self._comparisons))
            self.dropped += max(0, len(comparisons) - room)
            self._comparisons[:0] = comparisons[:room]
            for capability, paths in noise.items():
                self._noise.setdefault(capability, set()).update(paths)
            self._skips.update(skips)
