"""Mode `parallel` through the real stack: what the comparisons find, that shadows move no money, slow shadows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa

from core.procs import wait_until
from parallel_run.report.model import CapabilityReport
from parallel_run.report.query import build_reports
from tests.stackclient import FacadeClient

MESSY = "  Rent   for\tMay "  # the cloud service collapses this to "Rent for May" (sandbox honest difference 4)


def rid() -> str:
    return f"par-{uuid.uuid4().hex[:16]}"


def comparisons(facade: FacadeClient, request_ids: list[str], timeout: float = 15.0) -> dict[str, dict[str, object]]:
    """Wait for one stored comparison per request id; return each with its differences as {path: kind}."""
    query = sa.text(
        "SELECT c.request_id, c.verdict, c.primary_side, c.shadow_side, c.shadow_status, d.path, d.kind "
        "FROM strangler.comparisons c LEFT JOIN strangler.comparison_diffs d ON d.comparison_id = c.id "
        "WHERE c.request_id = ANY(:ids)"
    )
    found: dict[str, dict[str, object]] = {}

    def all_there() -> bool:
        found.clear()
        with facade.engine.connect() as conn:
            for row in conn.execute(query, {"ids": request_ids}):
                entry = found.setdefault(
                    row.request_id,
                    {"verdict": row.verdict, "sides": (row.primary_side, row.shadow_side), "diffs": {}},
                )
                if row.path:
                    entry["diffs"][row.path] = row.kind  # type: ignore[index]
        return len(found) == len(request_ids)

    wait_until(all_there, timeout, interval=0.1, what=f"{len(request_ids)} comparisons")
    return found


def report(facade: FacadeClient, capability: str, since: datetime) -> CapabilityReport:
    (result,) = build_reports(facade.engine, [(capability, since, datetime.now(UTC) + timedelta(seconds=1))])
    return result


@pytest.fixture
def since() -> datetime:
    return datetime.now(UTC) - timedelta(milliseconds=50)


@pytest.fixture
def queue_drained(facade: FacadeClient) -> Iterator[None]:
    """Leave no shadow work queued behind a test (it would be compared after its faults were lifted)."""
    yield
    wait_until(lambda: shadow_metric(facade, "strangler_shadow_queue") == 0, 30, interval=0.2, what="shadow queues")


def shadow_answers(facade: FacadeClient) -> bool:
    """Return whether one fresh read in each of a few tries is compared with a real shadow answer."""
    ids = [rid() for _ in range(4)]
    for request_id in ids:
        facade.request("GET", "/v1/accounts/99/balance", headers={"X-Request-ID": request_id})
    return all(c["verdict"] == "match" for c in comparisons(facade, ids).values())


def shadow_metric(facade: FacadeClient, name: str, label: str = "") -> float:
    text = requests.get(facade.url + "/metrics", timeout=5).text
    return sum(
        float(line.split()[-1]) for line in text.splitlines() if line.startswith(name) and label in line.split()[0]
    )


def test_balances_in_parallel_match_once_the_timestamp_is_truncated(facade: FacadeClient, since: datetime) -> None:
    facade.set_route("accounts.balance", "parallel")
    ids = [rid() for _ in range(12)]
    for i, request_id in enumerate(ids):
        answer = facade.request("GET", f"/v1/accounts/{150 + i}/balance", headers={"X-Request-ID": request_id})
        assert answer.status_code == 200 and answer.headers["X-Strangler-Upstream"] == "legacy"
        assert answer.headers["X-Request-ID"] == request_id and len(answer.json()["as_of"]) == 10
    found = comparisons(facade, ids)
    assert {r: (c["verdict"], c["diffs"]) for r, c in found.items()} == {r: ("match", {}) for r in ids}
    assert all(c["sides"] == ("legacy", "cloud") for c in found.values())
    summary = report(facade, "accounts.balance", since)
    assert (summary.comparisons, summary.matches, summary.mismatches, summary.paths) == (12, 12, 0, ())


def test_payments_in_parallel_find_exactly_the_description_difference_and_move_no_money(
    facade: FacadeClient, since: datetime
) -> None:
    legacy_before, cloud_before = facade.ledger(), facade.cloud_ledger()
    facade.set_route("payments.create", "parallel")
    facade.set_route("payments.get", "parallel")
    descriptions = [MESSY, "rent", MESSY, "", "  padded"]
    ids, refs = [rid() for _ in descriptions], []
    for request_id, description in zip(ids, descriptions, strict=True):
        paid = pay(facade, request_id, description)
        assert paid.status_code == 201 and paid.headers["X-Strangler-Upstream"] == "legacy", paid.text
        assert paid.json()["description"] == description  # the caller gets legacy's answer, byte for byte
        refs.append(paid.json()["payment_id"])
    found = comparisons(facade, ids)
    expected = {
        r: ("mismatch", {"$.description": "value"}) if d.strip() != d or "  " in d or "\t" in d else ("match", {})
        for r, d in zip(ids, descriptions, strict=True)
    }
    assert {r: (c["verdict"], c["diffs"]) for r, c in found.items()} == expected

    # Read them back in parallel once CDC has copied them: legacy's record both ways, so no difference at all.
    wait_until(lambda: all(cloud_has(facade, ref) for ref in refs), 15, what="CDC to copy the payments")
    get_ids = [rid() for _ in refs]
    for request_id, ref in zip(get_ids, refs, strict=True):
        got = facade.request("GET", f"/v1/payments/{ref}", headers={"X-Request-ID": request_id})
        assert got.status_code == 200 and got.headers["X-Strangler-Upstream"] == "legacy"
    assert {c["verdict"] for c in comparisons(facade, get_ids).values()} == {"match"}

    created = report(facade, "payments.create", since)
    assert (created.comparisons, created.mismatches, created.critical_mismatches) == (5, 3, 0)
    assert [(p.path, p.count) for p in created.paths] == [("$.description", 3)]
    assert report(facade, "payments.get", since).paths == ()

    # Money: legacy posted each payment once and conserved the total; the cloud side's dry runs wrote nothing.
    legacy_after, cloud_after = facade.ledger(), facade.cloud_ledger()
    assert legacy_after["total_cents"] == legacy_before["total_cents"]
    assert legacy_after["posted_payments"] == legacy_before["posted_payments"] + 5
    assert legacy_after["max_postings_per_refno"] <= 1 and legacy_after["unbalanced_payments"] == 0
    assert all(facade.postings(ref) == 1 for ref in refs)
    for figure in ("posted_payments", "rejected_payments", "ledger_entries", "ledger_sum"):
        assert cloud_after[figure] == cloud_before[figure], figure
    wait_until(lambda: facade.cloud_ledger()["total_balance"] == cloud_before["total_balance"], 10, what="CDC")


def test_a_payment_refused_for_funds_is_refused_alike_by_both_sides(facade: FacadeClient, since: datetime) -> None:
    legacy_before = facade.ledger()
    facade.set_route("payments.create", "parallel")
    request_id = rid()
    body = {"from_account": "172", "to_account": "173", "amount": "999999.00", "currency": "EUR", "description": "x"}
    refused = facade.request(
        "POST", "/v1/payments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex, "X-Request-ID": request_id}
    )
    assert refused.status_code == 422 and refused.json()["payment"]["status"] == "rejected", refused.text
    assert comparisons(facade, [request_id])[request_id]["verdict"] == "match"
    legacy_after = facade.ledger()
    assert legacy_after["total_cents"] == legacy_before["total_cents"]
    assert legacy_after["rejected_payments"] == legacy_before["rejected_payments"] + 1
    assert legacy_after["posted_payments"] == legacy_before["posted_payments"]


def pay(facade: FacadeClient, request_id: str, description: str) -> requests.Response:
    body = {"from_account": "170", "to_account": "171", "amount": "1.00", "currency": "EUR", "description": description}
    headers = {"Idempotency-Key": uuid.uuid4().hex, "X-Request-ID": request_id}
    return facade.request("POST", "/v1/payments", json=body, headers=headers)


def cloud_has(facade: FacadeClient, ref: str) -> bool:
    return requests.get(f"{facade.stack.urls['cloud']}/v1/payments/{ref}", timeout=5).status_code == 200


@pytest.mark.usefixtures("queue_drained")
def test_a_slow_or_failing_shadow_does_not_change_the_primary_answers(facade: FacadeClient) -> None:
    # Fewer calls than the cloud breaker's fail_max (3 in these tests): a worker's shadow breaker must stay closed
    # through the timeouts, or later shadows would fail fast (breaker open) and be recorded as shadow errors.
    paths = [f"/v1/accounts/{180 + i}/balance" for i in range(2)]
    baseline = [facade.request("GET", p).json() for p in paths]
    facade.set_route("accounts.balance", "parallel")
    for faults, verdict in (({"latency_ms": 1500}, "shadow_timeout"), ({"error_rate": 1.0}, "shadow_error")):
        facade.cloud_faults(**faults)
        ids = [rid() for _ in paths]
        answers = [facade.request("GET", p, headers={"X-Request-ID": r}) for p, r in zip(paths, ids, strict=True)]
        assert [a.json() for a in answers] == baseline
        assert {a.headers["X-Strangler-Upstream"] for a in answers} == {"legacy"}
        assert {c["verdict"] for c in comparisons(facade, ids).values()} == {verdict}


@pytest.mark.usefixtures("queue_drained")
def test_when_the_shadow_queue_is_full_comparisons_are_skipped_and_counted(facade: FacadeClient) -> None:
    before = shadow_metric(facade, "strangler_shadow_skips_total", 'reason="queue_full"')
    facade.set_route("accounts.balance", "parallel")
    facade.cloud_faults(latency_ms=300)  # each shadow holds one of 2 threads per worker for 0.3 s; 16 may wait
    # A shadow breaker opened by an earlier failing shadow would answer at once: wait for real shadow calls.
    wait_until(lambda: shadow_answers(facade), 10, interval=0.2, what="shadow calls to get through")

    def read(i: int) -> requests.Response:
        return facade.request("GET", f"/v1/accounts/{100 + i % 40}/balance")

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(read, range(120)))
    assert {(a.status_code, a.headers["X-Strangler-Upstream"]) for a in answers} == {(200, "legacy")}
    assert shadow_metric(facade, "strangler_shadow_skips_total", 'reason="queue_full"') > before

    def stored() -> int:
        with facade.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "SELECT coalesce(sum(count), 0) FROM strangler.shadow_skips "
                        "WHERE capability = 'accounts.balance' AND reason = 'queue_full'"
                    )
                ).scalar_one()
            )

    wait_until(lambda: stored() > 0, 5, what="the skips to be stored")
