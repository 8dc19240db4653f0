"""The gunicorn worker of every HTTP service here (facade, sandbox): gthread, except that the thread which answered a
keep-alive request waits on that connection for the next one while every connection of the worker can have a thread
of its own.

gthread hands every request across three threads (the poller wakes, a pool thread serves, the poller re-registers
the socket), which costs three wake-ups and about 0.3 ms of CPU per request on this kind of machine, and as much
latency. A thread that stays on its connection needs one wake-up. It never holds a thread another connection
needs: when the worker has more connections than threads, or is stopping, the main thread raises a flag (a pipe
every waiting thread polls) and the waiting threads hand their connections back to the poller at once, which is
plain gthread again. An idle connection is closed after the keep-alive timeout, as gthread does, and a connection
that ends on a pool thread is closed by that thread: the main thread accepts and dispatches for the whole worker, so
it must never wait on a peer.

Use: `gunicorn --worker-class core.worker.LingeringThreadWorker` (`strangler serve` and the sandbox services do).
"""

from __future__ import annotations

import contextlib
import os
import select
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

_READY = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP
_SERVE, _HAND_BACK, _EXPIRE, _CLOSED = object(), object(), object(), object()
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
        """Serve the connection's request, then its next ones as long as they come while this thread may wait; a
        connection that ends here is closed here too."""
        result = super().handle(conn)
        while result is True and not conn.is_http2:
            after = self._wait_for_next_request(conn)
            if after is _HAND_BACK:
                return True  # the poller keeps it
            if after is _EXPIRE:
                conn.close()  # idle past keep-alive: a plain close, as gthread's poller expires its own
                return _CLOSED
            result = super().handle(conn)
        if result is False:
            # gthread would close it gracefully on the main thread, which then waits up to 2 s for a peer that may
            # never answer (an idle pooled connection): accepting and dispatching for the whole worker would stop.
            with contextlib.suppress(OSError):  # already closed by gthread (a TLS EOF)
                conn.close(graceful=True)
            return _CLOSED
        return result

    def finish_request(self, conn: Any, fs: Any) -> None:
        """Account for a connection the serving thread closed itself; anything else is gthread's to finish."""
        if not fs.cancelled() and fs.exception() is None and fs.result() is _CLOSED:
            self.nr_conns -= 1
            return
        super().finish_request(conn, fs)

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
