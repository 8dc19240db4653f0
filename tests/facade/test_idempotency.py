"""Idempotency keys against real PostgreSQL: proceed, replay, mismatch, conflict, stale claims and expiry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
import sqlalchemy as sa

from core.calls import Call, Outcome
from core.db import idempotency_keys, make_engine
from core.migrate import create_schema
from facade.idempotency import PostgresIdempotencyStore
from tests.builders import call

PAYMENT = {"from_account": "1", "to_account": "2", "amount": "1.00", "currency": "EUR"}


def pay(body: dict[str, str] = PAYMENT) -> Call:
    return call("payments.create", "POST", "/v1/payments", body=body)


@pytest.fixture
def engine(new_database: Callable[[str], str]) -> sa.Engine:
    engine = make_engine(new_database("idem"), pool_size=2)
    create_schema(engine)
    return engine


def store(engine: sa.Engine, ttl: int = 3600, lease: float = 60) -> PostgresIdempotencyStore:
    return PostgresIdempotencyStore(engine, ttl, lease)


def test_first_use_proceeds_and_a_finished_write_is_replayed(engine: sa.Engine) -> None:
    s = store(engine)
    first = s.begin(pay(), "k1", "pay_a", resolvable=True)
    assert (first.kind, first.resource_id) == ("proceed", "pay_a")
    s.finish("portal", "k1", Outcome(201, {"payment_id": "pay_a"}, headers={"Location": "/v1/payments/pay_a"}))
    again = s.begin(pay(), "k1", "pay_b", resolvable=True)
    assert again.kind == "replay" and again.resource_id == "pay_a" and again.outcome is not None
    assert again.outcome.status == 201 and again.outcome.payload() == b'{"payment_id":"pay_a"}'
    assert again.outcome.headers["Location"] == "/v1/payments/pay_a"
    assert again.outcome.headers["Idempotent-Replayed"] == "true"


def test_same_key_with_a_different_body_is_a_mismatch(engine: sa.Engine) -> None:
    s = store(engine)
    s.begin(pay(), "k1", "pay_a", resolvable=True)
    assert s.begin(pay({**PAYMENT, "amount": "2.00"}), "k1", "pay_b", resolvable=True).kind == "mismatch"


def test_same_body_with_reordered_keys_is_the_same_request(engine: sa.Engine) -> None:
    s = store(engine)
    s.begin(pay(), "k1", "pay_a", resolvable=True)
    reordered = dict(reversed(list(PAYMENT.items())))
    assert s.begin(pay(reordered), "k1", "pay_b", resolvable=True).kind == "conflict"


def test_keys_belong_to_one_client(engine: sa.Engine) -> None:
    s = store(engine)
    s.begin(pay(), "k1", "pay_a", resolvable=True)
    other = replace(pay(), client_id="other-portal")
    assert s.begin(other, "k1", "pay_b", resolvable=True).kind == "proceed"


def test_a_claim_whose_worker_died_becomes_in_doubt_for_resolvable_writes(engine: sa.Engine) -> None:
    s = store(engine, lease=0)
    s.begin(pay(), "k1", "pay_a", resolvable=True)
    decision = s.begin(pay(), "k1", "pay_b", resolvable=True)
    assert (decision.kind, decision.resource_id) == ("in_doubt", "pay_a")


def test_a_retryable_outcome_lets_the_same_key_run_again_with_the_same_reference(engine: sa.Engine) -> None:
    s = store(engine)
    s.begin(pay(), "k1", "pay_a", resolvable=True)
    s.finish("portal", "k1", Outcome(503, {"title": "unavailable"}), state="retryable")
    decision = s.begin(pay(), "k1", "pay_b", resolvable=True)
    assert (decision.kind, decision.resource_id) == ("proceed", "pay_a")


def test_expired_keys_are_reused_and_purged(engine: sa.Engine) -> None:
    s = store(engine, ttl=0)
    s.begin(pay(), "k1", "pay_a", resolvable=True)
    s.finish("portal", "k1", Outcome(201, {}))
    assert s.begin(pay({**PAYMENT, "amount": "9.00"}), "k1", "pay_b", resolvable=True).kind == "proceed"
    assert s.purge_expired() == 1
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(idempotency_keys)).scalar_one() == 0
