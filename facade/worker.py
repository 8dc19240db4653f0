"""The facade's gunicorn worker: gthread, except that the thread which answered a keep-alive request waits on that
connection for the next one while every connection of the worker can have a thread of its own.

gthread hands every request across three threads (the poller wakes, a pool thread serves, the poller re-registers
the socket), which costs three wake-ups and about 0.3 ms of CPU per request on this kind of machine, and as much
latency. A thread that stays on its connection needs one wake-up. It never holds a thread another connection
needs: when the worker has more connections than threads, or is stopping, the main thread raises a flag (a pipe
every waiting thread polls) and the waiting threads hand their connections back to the poller at once, which is
plain gthread again. An idle connection is closed after the keep-alive timeout, as gthread does.

Use: `gunicorn --worker-class facade.worker.LingeringThreadWorker` (`strangler serve` does).
"""

from __future__ import annotations

import contextlib
import os
import select
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

_READY = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP
_SERVE, _HAND_BACK, _EXPIRE = object(), object(), object()
WORKER_CLASS = f"{__name__}.LingeringThreadWorker"  # what gunicorn's --worker-class takes


class LingeringThreadWorker(ThreadWorker):
    """gthread whose pool threads keep serving their keep-alive connection while no other connection waits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._hand_back_r = self._hand_back_w = -1
        self._handing_back = False

    def init_process(self) -> None:
        # Level-triggered: while one byte sits in the pipe, every waiting thread sees it readable.
        self._hand_back_r, self._hand_back_w = os.pipe()
        os.set_blocking(self._hand_back_r, False)
        os.set_blocking(self._hand_back_w, False)
        super().init_process()

    def handle(self, conn: Any) -> Any:
        """Serve the connection's request, then its next ones as long as they come while this thread may wait."""
        result = super().handle(conn)
        while result is True and not conn.is_http2:
            after = self._wait_for_next_request(conn)
            if after is not _SERVE:
                return after is _HAND_BACK  # True: the poller keeps it; False: idle past keep-alive, closed
            result = super().handle(conn)
        return result

    def _wait_for_next_request(self, conn: Any) -> object:
        """Wait up to the keep-alive timeout for the connection's next request, unless the flag says hand it back."""
        if conn.parser.unreader.buf.getvalue() or getattr(conn.sock, "pending", lambda: 0)():
            return _SERVE  # already read: a pipelined request, or TLS records decrypted ahead
        if not self.alive or self._handing_back:
            return _HAND_BACK
        poller = select.poll()
        poller.register(conn.sock.fileno(), _READY)
        poller.register(self._hand_back_r, select.POLLIN)
        ready = dict(poller.poll(self.cfg.keepalive * 1000))
        if self._hand_back_r in ready:
            return _HAND_BACK
        return _SERVE if ready else _EXPIRE  # readable also means closed by the client: serving reads the EOF

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        super().wait_for_and_dispatch_events(timeout)
        self._update_hand_back()

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        self._raise_hand_back()  # a stopping worker answers with Connection: close from the poller's side

    def _update_hand_back(self) -> None:
        """Raise the flag while the worker has more connections than threads or is stopping; lower it otherwise."""
        if not self.alive or self.nr_conns > self.cfg.threads:
            self._raise_hand_back()
        elif self._handing_back:
            self._handing_back = False
            with contextlib.suppress(BlockingIOError):
                os.read(self._hand_back_r, 64)

    def _raise_hand_back(self) -> None:
        if not self._handing_back:
            self._handing_back = True
            with contextlib.suppress(BlockingIOError):  # full: the bytes already there do the job
                os.write(self._hand_back_w, b"\0")
