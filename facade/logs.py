"""JSON logs: one object per line, with the request id wherever one is known, written off the request threads.

Request threads only put the record on a queue (no lock, no formatting, no copy); one writer thread formats what
accumulated and writes it in one go, so a busy worker pays one wake-up and one write per batch, not per line. The
access log, one line per answered request, skips the logging record altogether: the request thread queues its fields
and the writer turns them into the same JSON object python-json-logger would.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

ACCESS_LOGGER = "strangler.access"
BATCH_WAIT_S = 0.05  # after the first line of a batch, how long the writer lets more accumulate


class _Stop:
    """Sentinel: the writer drains what is queued, then ends."""


class _Access:
    """One access-log line as queued by a request thread: when, and its fields."""

    __slots__ = ("created", "fields")

    def __init__(self, created: float, fields: Mapping[str, Any]) -> None:
        self.created, self.fields = created, fields


_Entry = logging.LogRecord | _Access | _Stop


class _Enqueue(logging.Handler):
    """Puts records on the writer's queue; thread-safe without the handler lock, since the queue is."""

    def __init__(self, entries: queue.SimpleQueue[_Entry]) -> None:
        super().__init__()
        self.entries = entries
        self._strangler = True

    def handle(self, record: logging.LogRecord) -> bool:
        rv = self.filter(record)
        if rv:
            self.emit(record if isinstance(rv, bool) else rv)
        return bool(rv)

    def emit(self, record: logging.LogRecord) -> None:
        if record.args:
            # Render the message now: the arguments may change before the writer gets to them.
            record.msg, record.args = record.getMessage(), None
        self.entries.put(record)


class _Writer:
    """The one thread that formats queued entries as JSON lines and writes them to a stream in batches."""

    def __init__(self, entries: queue.SimpleQueue[_Entry], stream: TextIO) -> None:
        self.entries, self.stream = entries, stream
        self.formatter = JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s", rename_fields={"levelname": "level"}
        )
        self._second = -1
        self._second_text = ""
        self._thread = threading.Thread(target=self._run, name="strangler-log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then end the thread."""
        self.entries.put(_Stop())
        self._thread.join(5.0)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self.entries.get()]
            if not isinstance(batch[0], _Stop):
                time.sleep(BATCH_WAIT_S)
            while True:
                try:
                    batch.append(self.entries.get_nowait())
                except queue.Empty:
                    break
            lines = []
            for entry in batch:
                if isinstance(entry, _Stop):
                    stopping = True
                    continue
                try:
                    lines.append(self._line(entry))
                except Exception:  # one bad record must not silence the rest
                    lines.append(json.dumps({"level": "ERROR", "name": "strangler.logs", "message": "bad log record"}))
            if lines:
                try:
                    self.stream.write("\n".join(lines) + "\n")
                    self.stream.flush()
                except (OSError, ValueError):
                    pass  # nowhere left to write to (stream closed at exit)

    def _line(self, entry: logging.LogRecord | _Access) -> str:
        return self._access_line(entry) if isinstance(entry, _Access) else self.formatter.format(entry)

    def _access_line(self, entry: _Access) -> str:
        """Return the line python-json-logger would write for ``log.info("request", extra=fields)``."""
        second = int(entry.created)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        msecs = int((entry.created - second) * 1000)
        head = {"asctime": f"{self._second_text},{msecs:03d}", "level": "INFO", "name": ACCESS_LOGGER}
        return json.dumps({**head, "message": "request", **entry.fields})


def configure_logging(level: str = "INFO") -> None:
    """Send strangler's logs to stderr as JSON lines via a queue (idempotent: safe to call from every worker).

    Request threads only enqueue the record; one writer thread formats and writes, so dozens of threads do not
    queue on the stream's lock.
    """
    root = logging.getLogger("strangler")
    if any(getattr(h, "_strangler", False) for h in root.handlers):
        return
    entries: queue.SimpleQueue[_Entry] = queue.SimpleQueue()
    writer = _Writer(entries, sys.stderr)
    writer.start()
    atexit.register(writer.stop)  # flush what is queued when the worker exits
    root.addHandler(_Enqueue(entries))
    root.setLevel(level)
    root.propagate = False


class AccessLog:
    """Logs one line per answered request at INFO on "strangler.access", as cheaply as the request thread can."""

    def __init__(self) -> None:
        self._log = logging.getLogger(ACCESS_LOGGER)
        handlers = [h for h in logging.getLogger("strangler").handlers if isinstance(h, _Enqueue)]
        # Straight onto the writer's queue when the access logger leads there and nowhere else; else plain logging.
        direct = len(handlers) == 1 and not self._log.handlers and self._log.propagate and not self._log.filters
        self._entries = handlers[0].entries if direct else None

    def write(self, fields: Mapping[str, Any]) -> None:
        """Log ``"request"`` with these fields (JSON-serialisable values)."""
        if not self._log.isEnabledFor(logging.INFO):
            return
        if self._entries is not None:
            self._entries.put(_Access(time.time(), fields))
        else:
            self._log.info("request", extra=dict(fields))
