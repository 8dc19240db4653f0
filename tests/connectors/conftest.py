"""Fixtures shared by the upstream client's tests: a scripted HTTP server on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.connectors.upstream_fakes import ScriptedUpstream, scripted


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    """A loopback HTTP server answering what each test scripts."""
    with scripted() as server:
        yield server
