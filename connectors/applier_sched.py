"""The applier's bookkeeping (no I/O): per-key FIFO queues handed to one worker at a time, and per-partition offsets."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
Partition = tuple[str, int]  # (topic, partition)


class KeyQueues(Generic[K, T]):
    """Per-key FIFO queues; a key is owned by at most one worker at a time and can be put aside for a retry delay.

    A worker `take`s a ready key, works through its `head` (`pop` after each settled item) and `release`s it, with a
    delay if its head failed for now; other keys keep flowing meanwhile. Thread-safe.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._queues: dict[K, deque[T]] = {}
        self._ready: deque[K] = deque()
        self._owned: set[K] = set()
        self._delayed: list[tuple[float, int, K]] = []
        self._delayed_keys: set[K] = set()
        self._tiebreak = itertools.count()
        self._items = 0
        self._closed = False

    def put(self, key: K, item: T) -> None:
        """Append an item to its key's queue, making the key ready unless it is owned or waiting out a delay."""
        with self._cond:
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = deque()
                if key not in self._owned and key not in self._delayed_keys:
                    self._ready.append(key)
                    self._cond.notify()
            queue.append(item)
            self._items += 1

    def take(self, timeout: float) -> K | None:
        """Return a ready key, now owned by the caller, or None after `timeout` seconds or once closed."""
        deadline = self._clock() + timeout
        with self._cond:
            while not self._closed:
                now = self._clock()
                while self._delayed and self._delayed[0][0] <= now:
                    _, _, key = heapq.heappop(self._delayed)
                    self._delayed_keys.discard(key)
                    self._ready.append(key)
                if self._ready:
                    key = self._ready.popleft()
                    self._owned.add(key)
                    return key
                if now >= deadline:
                    return None
                wake = min(deadline, self._delayed[0][0]) if self._delayed else deadline
                self._cond.wait(max(0.0, wake - now))
            return None

    def head(self, key: K) -> T | None:
        """Return the oldest item of an owned key, or None when its queue is empty."""
        with self._cond:
            queue = self._queues.get(key)
            return queue[0] if queue else None

    def pop(self, key: K, item: T) -> None:
        """Remove `item` from the front of an owned key's queue (no-op if something else took it away meanwhile)."""
        with self._cond:
            queue = self._queues.get(key)
            if queue and queue[0] is item:
                queue.popleft()
                self._items -= 1

    def release(self, key: K, retry_after: float | None = None) -> None:
        """Give an owned key back: ready again if it has items, or put aside for `retry_after` seconds."""
        with self._cond:
            self._owned.discard(key)
            queue = self._queues.get(key)
            if not queue:
                self._queues.pop(key, None)
            elif retry_after is not None and retry_after > 0:
                heapq.heappush(self._delayed, (self._clock() + retry_after, next(self._tiebreak), key))
                self._delayed_keys.add(key)
                self._cond.notify()  # a sleeping taker may need to wake earlier for this due time
            else:
                self._ready.append(key)
                self._cond.notify()

    def drop(self, unwanted: Callable[[T], bool]) -> int:
        """Remove queued items for which `unwanted` is true, except the head of an owned key; return how many."""
        removed = 0
        with self._cond:
            for key, queue in self._queues.items():
                keep_head = key in self._owned and bool(queue)
                head = [queue.popleft()] if keep_head else []
                kept = [item for item in queue if not unwanted(item)]
                removed += len(queue) - len(kept)
                queue.clear()
                queue.extend(head + kept)
            self._items -= removed
        return removed

    def keys_in_flight(self) -> int:
        """Return how many keys have unsettled work (queued, owned or waiting out a retry)."""
        with self._cond:
            return len(self._queues)

    def items(self) -> int:
        """Return how many items are queued in all."""
        with self._cond:
            return self._items

    def close(self) -> None:
        """Wake every waiting taker; `take` returns None from now on."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


@dataclass
class _PartitionOffsets:
    consumed: deque[int] = field(default_factory=deque)  # in consumption order, unsettled ones still in front
    settled: set[int] = field(default_factory=set)
    first: int = -1  # first offset consumed since the assignment: the baseline until something is committed
    last: int = -1
    committed: int | None = None


class OffsetTracker:
    """Offsets consumed and settled per assigned partition; commit up to the lowest one not yet settled. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: dict[Partition, _PartitionOffsets] = {}

    def assign(self, partitions: Iterable[Partition]) -> None:
        """Start tracking newly assigned partitions (fresh state: positions come from the group's commits)."""
        with self._lock:
            for tp in partitions:
                self._parts[tp] = _PartitionOffsets()

    def revoke(self, partitions: Iterable[Partition]) -> None:
        """Stop tracking partitions this consumer no longer owns; their later settlements are ignored."""
        with self._lock:
            for tp in partitions:
                self._parts.pop(tp, None)

    def owned(self) -> int:
        """Return how many partitions are assigned to this consumer."""
        with self._lock:
            return len(self._parts)

    def owns(self, tp: Partition) -> bool:
        """Return True while the partition is assigned to this consumer."""
        with self._lock:
            return tp in self._parts

    def consumed(self, tp: Partition, offset: int) -> None:
        """Record a record handed to the applier (offsets arrive in increasing order per partition)."""
        with self._lock:
            part = self._parts.get(tp)
            if part is None:  # delivered after a revoke: nothing to track
                return
            part.consumed.append(offset)
            if part.first < 0:
                part.first = offset
            part.last = max(part.last, offset)

    def settle(self, tp: Partition, offset: int) -> None:
        """Record that a record's effect (or its dead letter) is committed in the database."""
        with self._lock:
            part = self._parts.get(tp)
            if part is not None:
                part.settled.add(offset)

    def positions(self) -> dict[Partition, int]:
        """Return the committable position of every partition that consumed anything: its lowest unsettled offset."""
        out: dict[Partition, int] = {}
        with self._lock:
            for tp, part in self._parts.items():
                while part.consumed and part.consumed[0] in part.settled:
                    part.settled.discard(part.consumed.popleft())
                if part.last >= 0:
                    out[tp] = part.consumed[0] if part.consumed else part.last + 1
        return out

    def mark_committed(self, positions: dict[Partition, int]) -> None:
        """Remember what the group now has committed (for lag)."""
        with self._lock:
            for tp, position in positions.items():
                if tp in self._parts:
                    self._parts[tp].committed = position

    def committed(self, tp: Partition) -> int | None:
        """Return the position last committed for a partition by this consumer, or None."""
        with self._lock:
            part = self._parts.get(tp)
            return part.committed if part else None

    def lag(self) -> dict[Partition, int]:
        """Return, per partition, records consumed but not yet committed (last consumed + 1 - committed position)."""
        with self._lock:
            return {
                tp: part.last + 1 - (part.committed if part.committed is not None else part.first)
                for tp, part in self._parts.items()
                if part.last >= 0
            }
