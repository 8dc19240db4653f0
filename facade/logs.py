"""JSON logs: one object per line, with the request id wherever one is known, written off the request threads."""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys

from pythonjsonlogger.json import JsonFormatter


def configure_logging(level: str = "INFO") -> None:
    """Send strangler's logs to stderr as JSON lines via a queue (idempotent: safe to call from every worker).

    Request threads only enqueue the record; one listener thread formats and writes, so dozens of threads do not
    queue on the stream handler's lock.
    """
    root = logging.getLogger("strangler")
    if any(getattr(h, "_strangler", False) for h in root.handlers):
        return
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(
        JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", rename_fields={"levelname": "level"})
    )
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = logging.handlers.QueueHandler(records)
    handler._strangler = True  # type: ignore[attr-defined]
    listener = logging.handlers.QueueListener(records, stream, respect_handler_level=True)
    listener.start()
    atexit.register(listener.stop)  # flush what is queued when the worker exits
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
