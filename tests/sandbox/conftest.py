"""Fixtures that start the sandbox services under real gunicorn, once per session, each on its own database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from core.pgcluster import PgCluster
from core.procs import Service
from sandbox.run import start_cloud, start_legacy

CUSTOMERS = 60


@dataclass
class Running:
    """One running sandbox service, its database, and an engine for asserting on that database directly."""

    service: Service
    database_url: str
    engine: Engine

    @property
    def url(self) -> str:
        return self.service.url

    def ledger(self) -> dict[str, Any]:
        response = requests.get(self.url + "/__admin/ledger", timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        response = requests.put(self.url + "/__admin/faults", json=faults, timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def reset_faults(self) -> None:
        requests.delete(self.url + "/__admin/faults", timeout=10).raise_for_status()


def _running(
    pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory, kind: str, start: Any
) -> Iterator[Running]:
    database_url = pg_cluster.create_database(f"sandbox_{kind}_{uuid.uuid4().hex[:8]}")
    service = start(database_url, tmp_path_factory.mktemp(f"sandbox-{kind}"), customers=CUSTOMERS)
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        yield Running(service=service, database_url=database_url, engine=engine)
    finally:
        service.stop()
        engine.dispose()


@pytest.fixture(scope="session")
def legacy(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The legacy core-banking API (2 gunicorn workers) on a database seeded with CUSTOMERS customers."""
    yield from _running(pg_cluster, tmp_path_factory, "legacy", start_legacy)


@pytest.fixture(scope="session")
def cloud(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The cloud portal API (2 gunicorn workers) on a cloud store seeded with CUSTOMERS customers."""
    yield from _running(pg_cluster, tmp_path_factory, "cloud", start_cloud)


@pytest.fixture
def legacy_faults(legacy: Running) -> Iterator[Running]:
    """The legacy service, with every fault switched off again after the test whatever happened in it."""
    legacy.reset_faults()
    yield legacy
    legacy.reset_faults()


@pytest.fixture
def cloud_faults(cloud: Running) -> Iterator[Running]:
    """The cloud service, with every fault switched off again after the test whatever happened in it."""
    cloud.reset_faults()
    yield cloud
    cloud.reset_faults()
