"""A legacy stand-in that costs next to no CPU: every request is answered, after a fixed delay, with one canned body.

The slow-legacy case runs the sandbox legacy on the same two cores as the facade, so its own CPU (about 0.8-1 ms
per request) queues with the facade's. This stand-in (asyncio, ~0.1 ms per request) answers with the sandbox
legacy's real balance reply, so the facade's adapter sees an authentic answer. It measures the facade in front of a
legacy whose cost is on other hardware, as in production.

Run: `python -m bench.stublegacy --port P --delay-ms 100 --body-file F` (the benchmark starts and stops it).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import click

_END_OF_HEAD = b"\r\n\r\n"


def response(body: bytes) -> bytes:
    """Return the whole HTTP/1.1 answer, status line to body, that every request gets."""
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def body_length(head: bytes) -> int:
    """Return the Content-Length a request head announces (0 without one)."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


async def serve(port: int, delay_s: float, answer: bytes) -> None:
    """Serve keep-alive connections on loopback `port` until cancelled."""

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(_END_OF_HEAD)
                await reader.readexactly(body_length(head))
                await asyncio.sleep(delay_s)
                writer.write(answer)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # the client went away, or sent something this stand-in does not read: drop the connection
        except asyncio.CancelledError:
            # Shutting down with connections open: end quietly. Python 3.11's stream callback would otherwise print
            # a CancelledError traceback for every connection still open.
            return
        finally:
            writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


@click.command()
@click.option("--port", type=int, required=True)
@click.option("--delay-ms", type=float, default=100.0, show_default=True)
@click.option("--body-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
def main(port: int, delay_ms: float, body_file: Path) -> None:
    """Answer every request on 127.0.0.1:PORT with the body in BODY_FILE, DELAY_MS late."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like Ctrl-C
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(port, delay_ms / 1000.0, response(body_file.read_bytes())))


if __name__ == "__main__":
    main()
