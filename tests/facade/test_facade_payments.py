"""Payments through the real facade: idempotency, in-doubt resolution and conservation of money under faults."""

from __future__ import annotations

import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests
import sqlalchemy as sa

from core.db import idempotency_keys
from core.procs import wait_until
from tests.stackclient import FacadeClient


def assert_conserved(facade: FacadeClient, before: dict[str, int]) -> None:
    after = facade.ledger()
    assert after["total_cents"] == before["total_cents"], "money was created or destroyed"
    assert after["ledger_sum_cents"] == 0 and after["unbalanced_payments"] == 0


def test_payment_is_posted_once_and_replayed_for_the_same_key(facade: FacadeClient) -> None:
    before = facade.ledger()
    first = facade.pay("same-key-1", amount="12.34")
    assert first.status_code == 201, first.text
    payment = first.json()
    assert payment["status"] == "posted" and payment["amount"] == "12.34" and payment["from_account"] == "1"
    again = facade.pay("same-key-1", amount="12.34")
    assert again.status_code == 201 and again.json() == payment
    assert again.headers["Idempotent-Replayed"] == "true"
    fetched = facade.request("GET", f"/v1/payments/{payment['payment_id']}")
    assert fetched.status_code == 200 and fetched.json()["payment_id"] == payment["payment_id"]
    assert facade.postings(payment["payment_id"]) == 1
    assert facade.ledger()["posted_payments"] == before["posted_payments"] + 1
    assert_conserved(facade, before)


def test_same_key_with_a_different_payment_is_422(facade: FacadeClient) -> None:
    before = facade.ledger()
    assert facade.pay("same-key-2", amount="1.00").status_code == 201
    reused = facade.pay("same-key-2", amount="2.00")
    assert reused.status_code == 422 and reused.json()["type"].endswith("/idempotency-key-reused")
    assert facade.ledger()["posted_payments"] == before["posted_payments"] + 1
    assert_conserved(facade, before)


def test_same_key_while_the_first_is_running_is_409(facade: FacadeClient) -> None:
    before = facade.ledger()
    facade.faults(latency_ms=1500, paths=["/CBS/PAYMT"])
    results: dict[str, requests.Response] = {}
    first = threading.Thread(target=lambda: results.setdefault("first", facade.pay("slow-key", amount="3.00")))
    first.start()

    def claimed() -> bool:
        with facade.engine.connect() as conn:
            row = conn.execute(sa.select(idempotency_keys.c.state).where(idempotency_keys.c.key == "slow-key")).first()
        return row is not None and row.state == "in_flight"

    wait_until(claimed, 5, what="the first request to claim its key")
    second = facade.pay("slow-key", amount="3.00")
    first.join()
    assert second.status_code == 409 and second.headers["Retry-After"] == "1"
    assert results["first"].status_code == 201
    assert facade.pay("slow-key", amount="3.00").json() == results["first"].json()
    assert_conserved(facade, before)


def test_insufficient_funds_is_a_final_422_and_moves_nothing(facade: FacadeClient) -> None:
    before = facade.ledger()
    rejected = facade.pay("poor-key", amount="99999999.00")
    assert rejected.status_code == 422 and rejected.json()["payment"]["reason"] == "insufficient_funds"
    assert facade.pay("poor-key", amount="99999999.00").status_code == 422
    assert facade.ledger()["total_cents"] == before["total_cents"]
    assert_conserved(facade, before)


def test_commit_then_timeout_is_resolved_to_exactly_one_posted_payment(facade: FacadeClient) -> None:
    before = facade.ledger()
    facade.faults(commit_timeout_rate=1.0, hang_s=3.0, paths=["/CBS/PAYMT"])
    response = facade.pay("lost-answer", amount="5.00")
    assert response.status_code == 201, response.text
    payment_id = response.json()["payment_id"]
    facade.faults(commit_timeout_rate=0.0)
    retry = facade.pay("lost-answer", amount="5.00")
    assert retry.status_code == 201 and retry.json()["payment_id"] == payment_id
    assert facade.postings(payment_id) == 1
    assert facade.ledger()["posted_payments"] == before["posted_payments"] + 1
    assert_conserved(facade, before)


def test_a_lost_request_is_in_doubt_then_settled_as_not_executed(facade: FacadeClient) -> None:
    before = facade.ledger()
    facade.faults(timeout_rate=1.0, hang_s=2.0, paths=["/CBS/PAYMT"])
    response = facade.pay("lost-request", amount="6.00")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "in_doubt" and response.headers["Location"] == body["status_url"]
    facade.faults(timeout_rate=0.0)
    status = facade.request("GET", body["status_url"])
    assert status.status_code == 200 and status.json()["status"] in ("in_doubt", "failed")
    wait_until(lambda: facade.request("GET", body["status_url"]).json()["status"] == "failed", 10, what="the watchdog")
    retry = facade.pay("lost-request", amount="6.00")
    assert retry.status_code == 502 and retry.json()["state"] == "failed"
    assert facade.postings(body["id"]) == 0
    assert facade.ledger() == before


def settle(facade: FacadeClient, key: str, body: dict[str, str]) -> requests.Response:
    """Retry one payment with its key the way a well-behaved portal does until it has a final answer."""
    for _ in range(60):
        response = facade.request("POST", "/v1/payments", json=body, headers={"Idempotency-Key": key}, fresh=False)
        if response.status_code not in (409, 202, 502, 503, 504):
            return response
        if response.status_code == 502 and response.json().get("state") == "failed":
            return response
    raise AssertionError(f"payment {key} never settled: {response.status_code} {response.text}")


def test_200_concurrent_payments_under_faults_are_each_posted_at_most_once(facade: FacadeClient) -> None:
    before = facade.ledger()
    facade.faults(error_rate=0.10, error_status=503, commit_timeout_rate=0.05, hang_s=1.5, paths=["/CBS/PAYMT"])
    rng = random.Random(7)
    jobs = []
    for _ in range(200):
        src, dst = rng.sample(range(1, 21), 2)
        body = {"from_account": str(src), "to_account": str(dst), "amount": f"{rng.randint(1, 5000) / 100:.2f}",
                "currency": "EUR"}  # fmt: skip
        jobs.append((uuid.uuid4().hex, body))
    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(lambda job: settle(facade, *job), jobs))
    facade.faults(error_rate=0.0, commit_timeout_rate=0.0)
    posted = [r.json()["payment_id"] for r in results if r.status_code == 201]
    assert all(r.status_code in (201, 422, 502) for r in results)
    assert len(posted) == len(set(posted)) and len(posted) > 150
    assert all(facade.postings(p) == 1 for p in posted)
    after = facade.ledger()
    assert after["posted_payments"] - before["posted_payments"] == len(posted), "a payment was posted twice"
    assert_conserved(facade, before)
