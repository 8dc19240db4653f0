"""Accepted updates reach legacy exactly once and in per-customer order, through outages, crashes and broker loss."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import requests
import sqlalchemy as sa

from cli.stack import assigned_partitions
from core.procs import wait_until
from tests.stackclient import FacadeClient


def accept(facade: FacadeClient, customer: int, phone: str) -> str:
    response = facade.update_profile(customer, phone=phone)
    assert response.status_code == 202, response.text
    return str(response.json()["request_id"])


def event_ids_by_customer(facade: FacadeClient, request_ids: list[str]) -> dict[str, list[str]]:
    """Return, per customer, the event ids of these updates in the order the facade accepted them."""
    with facade.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT key, event_id FROM strangler.event_requests WHERE request_id = ANY(:ids) ORDER BY key, sequence"
            ),
            {"ids": request_ids},
        )
        order: dict[str, list[str]] = defaultdict(list)
        for row in rows:
            order[row.key.zfill(10)].append(row.event_id)
        return order


def assert_applied_once_in_order(facade: FacadeClient, request_ids: list[str]) -> None:
    expected = event_ids_by_customer(facade, request_ids)
    log = facade.legacy_apply_log()
    for customer, events in expected.items():
        seen = [ref for ref in log.get(customer, []) if ref in set(events)]
        assert seen == events, f"customer {customer}: legacy applied {seen}, accepted {events}"


def test_an_update_flows_accepted_published_applied_and_legacy_changes(facade: FacadeClient) -> None:
    response = facade.update_profile(21, email="twenty-one@example.com")
    body = response.json()
    facade.await_applied([body["request_id"]], timeout=30)
    status = facade.request("GET", body["status_url"]).json()
    assert status["status"] == "applied" and status["published_at"] and status["applied_at"]
    assert status["accepted_at"] <= status["published_at"] <= status["applied_at"]
    legacy = requests.get(facade.stack.urls["legacy"] + "/CBS/CUST/INQ", params={"CUSTNO": "0000000021"}, timeout=5)
    assert legacy.json()["EMAIL"] == "twenty-one@example.com"


def test_1000_updates_over_50_customers_are_applied_once_in_per_customer_order(facade: FacadeClient) -> None:
    rng = random.Random(3)
    customers = list(range(30, 80))
    plan = [(rng.choice(customers), f"+47 {i:07d}") for i in range(1000)]
    by_customer: dict[int, list[str]] = defaultdict(list)
    for customer, phone in plan:
        by_customer[customer].append(phone)
    # Each customer's updates are sent in order by one thread; customers interleave across threads.
    with ThreadPoolExecutor(max_workers=10) as pool:
        ids = [
            rid
            for chunk in pool.map(lambda c: [accept(facade, c, p) for p in by_customer[c]], by_customer)
            for rid in chunk
        ]
    facade.await_applied(ids, timeout=120)
    assert_applied_once_in_order(facade, ids)
    for customer, phones in by_customer.items():
        legacy = requests.get(
            facade.stack.urls["legacy"] + "/CBS/CUST/INQ", params={"CUSTNO": f"{customer:010d}"}, timeout=5
        ).json()
        assert legacy["PHONE"] == phones[-1], f"customer {customer} ended with an older update"


def test_legacy_down_for_30_seconds_loses_nothing(facade: FacadeClient) -> None:
    facade.faults(error_rate=1.0, error_status=503, paths=["/CBS/CUST/"])
    ids: list[str] = []
    outage = threading.Event()
    threading.Timer(30.0, outage.set).start()
    i = 0
    while not outage.is_set():  # keep accepting updates for the whole outage: the facade must answer 202 throughout
        ids.append(accept(facade, 100 + i % 10, f"+47 9{i:06d}"))
        i += 1
        outage.wait(0.2)
    assert set(facade.update_states(ids).values()) <= {"accepted", "published"}
    facade.faults(error_rate=0.0)
    facade.await_applied(ids, timeout=120)
    assert_applied_once_in_order(facade, ids)


def test_broker_killed_and_restarted_mid_stream_loses_nothing_and_applies_nothing_twice(facade: FacadeClient) -> None:
    broker = facade.stack.broker
    assert broker is not None
    ids: list[str] = []
    for i in range(100):
        ids.append(accept(facade, 110 + i % 20, f"+47 8{i:06d}"))
    broker.restart()  # memory storage: every topic, record and committed offset is gone
    for i in range(100, 200):
        ids.append(accept(facade, 110 + i % 20, f"+47 8{i:06d}"))
    facade.await_applied(ids, timeout=180)
    assert_applied_once_in_order(facade, ids)


def test_relay_and_applier_killed_at_random_points_apply_every_update_exactly_once(facade: FacadeClient) -> None:
    rng = random.Random(11)
    ids: list[str] = []
    for round_ in range(6):
        for i in range(60):
            ids.append(accept(facade, 140 + i % 15, f"+47 7{round_}{i:05d}"))
        victim = ("relay", "applier")[round_ % 2] if round_ < 5 else rng.choice(["relay", "applier"])
        facade.stack.services[victim].kill()  # SIGKILL: no goodbye, no final commit
        facade.stack.start_worker(victim, wait_assigned=False)  # the next round's updates go in at once
    facade.await_applied(ids, timeout=180)
    assert_applied_once_in_order(facade, ids)


def test_a_restarted_applier_is_handed_back_only_once_it_owns_partitions(facade: FacadeClient) -> None:
    facade.stack.services["applier"].kill()  # its partitions stay with the dead member until its session expires
    service = facade.stack.start_worker("applier")
    assert assigned_partitions(service.url) > 0
    request_id = accept(facade, 160, "+47 6000001")
    facade.await_applied([request_id], timeout=60)


def test_a_permanently_rejected_update_is_dead_lettered_and_replayed_after_the_fix(facade: FacadeClient) -> None:
    response = facade.update_profile(990, email="ghost@example.com")  # no such customer in legacy
    request_id = response.json()["request_id"]
    wait_until(lambda: facade.update_states([request_id]).get(request_id) == "failed", 60, what="dead-lettering")
    status = facade.request("GET", response.json()["status_url"]).json()
    assert status["status"] == "failed" and status["error"]
    env = {**facade.stack.facade_env, "COLUMNS": "200"}
    listing = subprocess.run([sys.executable, "-m", "cli.main", "events", "dlq", "list"], env=env,
                             capture_output=True, text=True, check=True)  # fmt: skip
    with facade.engine.connect() as conn:
        letter = conn.execute(
            sa.text(
                "SELECT d.id FROM strangler.dead_letters d JOIN strangler.event_requests r ON r.event_id = d.event_id "
                "WHERE r.request_id = :rid"
            ),
            {"rid": request_id},
        ).scalar_one()
    assert str(letter) in listing.stdout
    with facade.legacy_engine.begin() as conn:  # the fix: the customer now exists in legacy
        conn.execute(
            sa.text(
                "INSERT INTO cbs.custmast (custno, name, email, phone, addr1, city, postcd, opendt, lstupddt) "
                "VALUES ('0000000990', 'GHOST', 'x@example.com', '1', 'A', 'B', 'C', '20260101', '20260101')"
            )
        )
    replay = subprocess.run([sys.executable, "-m", "cli.main", "events", "dlq", "replay", str(letter), "--yes"],
                            env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert facade.update_states([request_id])[request_id] == "applied"
    legacy = requests.get(facade.stack.urls["legacy"] + "/CBS/CUST/INQ", params={"CUSTNO": "0000000990"}, timeout=5)
    assert legacy.json()["EMAIL"] == "ghost@example.com"
