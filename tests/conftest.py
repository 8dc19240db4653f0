"""Fixtures that start real services: one PostgreSQL cluster per session, a fresh database per test, the stack."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cli.stack import Stack, StackOptions
from core.pgcluster import PgCluster, start_cluster
from tests.stackclient import FacadeClient

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throwaway PostgreSQL cluster (wal_level=logical) for the whole session."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def new_database(pg_cluster: PgCluster) -> Callable[[str], str]:
    """Return a function that creates a fresh, uniquely named database and returns its SQLAlchemy URL."""

    def make(prefix: str = "db") -> str:
        return pg_cluster.create_database(f"{prefix}_{next(_db_counter)}")

    return make


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """A per-test directory for child service logs."""
    path = tmp_path / "logs"
    path.mkdir()
    return path


# --- the whole stack under real gunicorn, shared by the facade's integration tests --------------------------------

OTHER_CLIENT_TOKEN = "other-portal-token-0123456789"
STACK_ENV = {
    "STRANGLER_ROUTE_POLL_S": "0.2",
    "STRANGLER_IN_DOUBT_GRACE_S": "3",
    "STRANGLER_WATCHDOG_INTERVAL_S": "0.3",
    "STRANGLER_MAX_BODY_BYTES": "8192",
    "STRANGLER_REPUBLISH_AFTER_S": "5",
    # Small enough that a test can fill the shadow queue; a quick guard.
    "STRANGLER_SHADOW_WORKERS": "2",
    "STRANGLER_SHADOW_QUEUE": "16",
    "STRANGLER_GUARD_INTERVAL_S": "0.5",
}


def rules_for_tests() -> str:
    """The shipped rules with settings that make failure paths quick to reach in tests."""
    from tests.builders import shipped_rules_text

    text = shipped_rules_text().replace("breaker: {fail_max: 5, reset_s: 5}", "breaker: {fail_max: 3, reset_s: 1}")
    text = text.replace("    idempotency: required\n", "    idempotency: required\n    read_timeout_ms: 1000\n")
    return text.replace(
        "    adapters: {legacy: legacy.payment_get}\n",
        "    adapters: {legacy: legacy.payment_get}\n    max_lag_ms: 2000\n",
    )


@pytest.fixture(scope="session")
def stack(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """PostgreSQL databases, the sandbox legacy core and cloud service, and the facade (2 workers), all real."""
    rules = tmp_path_factory.mktemp("rules") / "routing_rules.yaml"
    rules.write_text(rules_for_tests())
    urls = {role: pg_cluster.create_database(f"stack_{role}") for role in ("control", "legacy", "cloud")}
    options = StackOptions(
        customers=200, rules_path=rules, facade_workers=2, facade_threads=16, legacy_workers=2, legacy_threads=16,
        cloud_threads=8, extra_env=STACK_ENV, database_urls=urls, keep_logs=True, log=print,
        extra_clients={"other-portal": OTHER_CLIENT_TOKEN},
    )  # fmt: skip
    with Stack(options) as running:
        yield running


@pytest.fixture
def facade(stack: Stack) -> Iterator[FacadeClient]:
    """A client of the running facade; every test starts with legacy routes everywhere and no legacy faults."""
    client = FacadeClient(stack)
    client.reset()
    yield client
    client.reset()
