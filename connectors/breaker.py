"""A circuit breaker for one upstream: pybreaker's state machine, gated so that no lock is held across a network call.

pybreaker's own ``CircuitBreaker.call`` holds the breaker's lock for the whole guarded call, which would serialise
every request to an upstream. Here pybreaker keeps the state, the failure count, the trip and close decisions and the
listener notifications; ``CallBreaker`` only decides admission (with an injectable clock, so tests never wait for the
reset timeout) and reports each finished call to pybreaker as a trivial success or failure.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable

import pybreaker

log = logging.getLogger(__name__)

CLOSED = pybreaker.STATE_CLOSED
OPEN = pybreaker.STATE_OPEN
HALF_OPEN = pybreaker.STATE_HALF_OPEN


class BreakerOpen(Exception):
    """Raised by ``CallBreaker.admit`` when a call must not go out; ``retry_after`` is whole seconds, at least 1."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"circuit open, retry after {retry_after:g}s")
        self.retry_after = retry_after


class _Failed(Exception):
    """Reports a failed call to pybreaker, which learns outcomes only from exceptions."""


def _succeeded() -> None:
    return None


def _failed() -> None:
    raise _Failed


class _Transitions(pybreaker.CircuitBreakerListener):
    """Forwards pybreaker's state changes to the owning ``CallBreaker``."""

    def __init__(self, on_transition: Callable[[str, str], None]) -> None:
        self._on_transition = on_transition

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self._on_transition(old_state.name if old_state is not None else CLOSED, new_state.name)


class CallBreaker:
    """Admit or refuse calls to one upstream and learn from their outcomes; thread-safe and never blocks on I/O.

    Protocol per call: ``trial = admit()`` (may raise ``BreakerOpen``), then exactly one of ``record(trial, failed)``
    or ``abandon(trial)``. Half-open admits a single trial call at a time; its outcome closes or re-opens the breaker.
    """

    def __init__(
        self,
        name: str,
        *,
        fail_max: int,
        reset_s: float,
        on_change: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = name
        self._reset_s = reset_s
        self._on_change = on_change
        self._clock = clock
        # Re-entrant because the observer runs with the lock held and may read ``state``.
        self._lock = threading.RLock()
        self._opened_at = 0.0
        self._trial_in_flight = False
        self._pending: list[tuple[str, str]] = []
        self._storage = pybreaker.CircuitMemoryStorage(CLOSED)
        self._cb = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_s,
            name=name,
            state_storage=self._storage,
            listeners=[_Transitions(self._on_transition)],
        )

    @property
    def state(self) -> str:
        """Return "closed", "open" or "half-open"; an open breaker whose reset time has passed becomes half-open."""
        if self._storage.state == OPEN:
            with self._lock:
                self._half_open_if_due()
                self._notify()
        return self._storage.state

    @property
    def failures(self) -> int:
        """Return the current count of consecutive failed calls."""
        return self._storage.counter

    def admit(self) -> bool:
        """Return True if this call is the half-open trial, False for an ordinary call; raise BreakerOpen to refuse."""
        if self._storage.state == CLOSED:
            return False  # the hot path takes no lock
        with self._lock:
            state = self._storage.state
            if state == OPEN:
                remaining = self._half_open_if_due()
                if remaining > 0:
                    raise BreakerOpen(float(max(1, math.ceil(remaining))))
                self._notify()
                state = self._storage.state
            if state == CLOSED:
                return False
            if self._trial_in_flight:
                raise BreakerOpen(1.0)
            self._trial_in_flight = True
            return True

    def record(self, trial: bool, failed: bool) -> None:
        """Feed one finished call's outcome to the breaker (a failure may open it; a trial's success closes it)."""
        if not failed and not trial and self._storage.state == CLOSED and self._storage.counter == 0:
            return  # nothing to reset; a racing failure simply counts after this success
        with self._lock:
            if trial:
                self._trial_in_flight = False
            state = self._storage.state
            if state == OPEN or (state == HALF_OPEN and not trial):
                # A call admitted before the breaker opened reports late; only the trial may decide a half-open one.
                return
            # pybreaker counts (and perhaps trips on) the failure it is shown; the caller raises its own error.
            with contextlib.suppress(_Failed, pybreaker.CircuitBreakerError):
                self._cb.call(_failed if failed else _succeeded)
            self._notify()

    def abandon(self, trial: bool) -> None:
        """Forget an admitted call that produced no outcome (no slot, or a bug), freeing the trial if it was one."""
        if trial:
            with self._lock:
                self._trial_in_flight = False

    def _half_open_if_due(self) -> float:
        """Move an open breaker to half-open once its reset time has passed; return the seconds still to wait."""
        if self._storage.state != OPEN:
            return 0.0
        remaining = self._opened_at + self._reset_s - self._clock()
        if remaining <= 0:
            self._cb.half_open()
        return remaining

    def _on_transition(self, old: str, new: str) -> None:
        # pybreaker notifies before it stores the new state, so observers are told later, by _notify.
        if new == OPEN:
            self._opened_at = self._clock()
        self._pending.append((old, new))

    def _notify(self) -> None:
        """Tell the observer about transitions that completed; called with the lock held, so they arrive in order."""
        while self._pending:
            old, new = self._pending.pop(0)
            log.warning("circuit breaker %s: %s -> %s", self._name, old, new)
            if self._on_change is None:
                continue
            try:
                self._on_change(old, new)
            except Exception:
                # A broken observer (metrics) must not break calls to the upstream.
                log.exception("on_breaker_change callback failed for %s", self._name)
