"""Fixtures shared by this directory's tests: a scripted HTTP server on loopback for the upstream client, and the
applier tests' broker, sandbox legacy (one each per module) and world (one per test)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.broker import EmbeddedBroker
from core.pgcluster import PgCluster
from core.procs import Service
from sandbox.run import start_legacy
from tests.connectors.applier_world import World
from tests.connectors.upstream_fakes import ScriptedUpstream, scripted


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    """A loopback HTTP server answering what each test scripts."""
    with scripted() as server:
        yield server


@pytest.fixture(scope="module", name="broker")
def broker_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    started = EmbeddedBroker(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log").start()
    yield started
    started.kill()  # memory only, nothing to keep; SIGTERM waits ~5 s while clients are still connected


@pytest.fixture(scope="module", name="legacy_db")
def legacy_db_fixture(pg_cluster: PgCluster) -> str:
    return pg_cluster.create_database(f"applier_legacy_{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module", name="legacy")
def legacy_fixture(legacy_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = start_legacy(legacy_db, tmp_path_factory.mktemp("legacy"), customers=100, workers=2, threads=16)
    yield service
    service.stop()


@pytest.fixture(name="world")
def world_fixture(
    new_database: Callable[[str], str], legacy: Service, legacy_db: str, broker: EmbeddedBroker, tmp_path: Path
) -> Iterator[World]:
    made = World(new_database("applier"), legacy, legacy_db, broker, tmp_path)
    yield made
    made.close()
