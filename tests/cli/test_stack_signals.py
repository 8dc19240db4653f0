"""A program that owns a stack and is terminated (SIGTERM) stops every process of it and deletes its data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from core.procs import wait_until
from tests.builders import REPO

OWNER = textwrap.dedent(
    """
    import json, threading
    from cli.stack import Stack, StackOptions

    options = StackOptions(customers=10, facade_workers=1, legacy_workers=1, events_pipeline=False, replication=False)
    with Stack(options) as stack:
        pids = [service.proc.pid for service in stack.services.values()] + [stack.cluster.pid]
        print(json.dumps({"pids": pids, "dirs": [str(stack.workdir), str(stack.cluster.root)]}), flush=True)
        threading.Event().wait()
    """
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_terminated_owner_stops_its_stack_and_leaves_nothing_behind() -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        started = json.loads(owner.stdout.readline())  # printed once the whole stack answers
        assert started["pids"] and all(alive(pid) for pid in started["pids"])
        owner.send_signal(signal.SIGTERM)
        owner.wait(60)
    finally:
        if owner.poll() is None:
            owner.kill()
    try:
        wait_until(lambda: not any(alive(pid) for pid in started["pids"]), 10, what="the stack's processes to exit")
    finally:
        for pid in filter(alive, started["pids"]):  # a failing run must not leave them to the next tests
            os.kill(pid, signal.SIGKILL)
    assert not any(Path(d).exists() for d in started["dirs"])
