"""The JSON log writer: access lines as python-json-logger writes them, batched, and nothing lost at exit."""

from __future__ import annotations

import io
import json
import logging
import queue
import time

from facade.logs import _Access, _Entry, _Writer

FIELDS = {
    "request_id": "r1", "client": "portal", "method": "GET", "path": "/v1/accounts/1/balance",
    "capability": "accounts.balance", "mode": "legacy", "upstream": "legacy", "status": 200, "ms": 2.5,
}  # fmt: skip


def test_access_line_is_exactly_what_python_json_logger_writes() -> None:
    writer = _Writer(queue.SimpleQueue(), io.StringIO())
    for created in (1_790_000_000.0, 1_790_000_000.0999, time.time()):
        record = logging.getLogger("strangler.access").makeRecord(
            "strangler.access", logging.INFO, __file__, 1, "request", None, None, extra=FIELDS
        )
        record.created, record.msecs = created, int((created - int(created)) * 1000) + 0.0

        assert writer._access_line(_Access(created, FIELDS)) == writer.formatter.format(record)


def test_writer_batches_lines_in_order_and_writes_all_before_it_stops() -> None:
    entries: queue.SimpleQueue[_Entry] = queue.SimpleQueue()
    stream = io.StringIO()
    writer = _Writer(entries, stream)
    writer.start()
    record = logging.getLogger("strangler.test").makeRecord(
        "strangler.test", logging.WARNING, __file__, 1, "breaker %s", ("open",), None
    )

    for n in range(50):
        entries.put(_Access(time.time(), {**FIELDS, "request_id": f"r{n}"}))
    entries.put(record)
    writer.stop()

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line.get("request_id") for line in lines[:50]] == [f"r{n}" for n in range(50)]
    assert (lines[50]["level"], lines[50]["message"]) == ("WARNING", "breaker open")
    assert len(lines) == 51
