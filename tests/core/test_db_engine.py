"""The control-plane engine pings a pooled connection that sat idle, and only such a one (real PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from core.db import make_engine
from tests.connectors.upstream_fakes import unaccepting_port


def kill_pooled_backends(engine: sa.Engine, admin_url: str) -> None:
    """Terminate every server session of `engine`'s database, as a restart or a dropped link would."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            killed = conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": engine.url.database},
            ).scalar_one()
        assert killed >= 1
    finally:
        admin.dispose()


def backend_pid(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def test_an_idle_connection_killed_under_the_pool_is_replaced_before_use(new_database: Callable[[str], str]) -> None:
    url = new_database("ping")
    engine = make_engine(url, pool_size=1, ping_idle_s=0.0)  # every checkout counts as idle
    try:
        before = backend_pid(engine)
        kill_pooled_backends(engine, url)
        after = backend_pid(engine)  # the dead connection failed its ping and was replaced: no error here
        assert after != before
    finally:
        engine.dispose()


def test_a_connection_used_within_the_idle_time_is_not_pinged(new_database: Callable[[str], str]) -> None:
    """The trade-off made for one round trip less per checkout: a connection that dies within the idle time fails
    its next statement (a database error for that caller, nothing half-written); the pool then replaces it."""
    url = new_database("noping")
    engine = make_engine(url, pool_size=1, ping_idle_s=3600.0)
    try:
        before = backend_pid(engine)
        kill_pooled_backends(engine, url)
        with pytest.raises(sa.exc.OperationalError), engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        assert backend_pid(engine) != before  # invalidated by the failure, replaced on the next checkout
    finally:
        engine.dispose()


def test_connecting_to_a_host_that_never_answers_fails_after_the_connect_timeout() -> None:
    """A listener whose accept queue is full drops further handshakes, as a blackholed host does: the engine gives
    up after its connect timeout with an error instead of hanging until TCP does (minutes)."""
    with unaccepting_port() as port:
        engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/none", connect_timeout_s=2)
        outcome: list[BaseException] = []

        def connect() -> None:
            try:
                with engine.connect():
                    pass
            except BaseException as exc:  # handed to the test thread
                outcome.append(exc)

        worker = threading.Thread(target=connect, daemon=True)
        worker.start()
        worker.join(timeout=60)  # without a connect timeout this thread would still be waiting
        assert not worker.is_alive(), "connect did not give up"
        assert len(outcome) == 1 and isinstance(outcome[0], sa.exc.OperationalError), outcome
        assert "timeout" in str(outcome[0]).lower()
        engine.dispose()
