"""A test client for a running stack: portal calls, route changes, legacy faults and the ledger invariant."""

from __future__ import annotations

import uuid
from typing import Any

import requests
import sqlalchemy as sa

from cli.stack import Stack
from core.db import make_engine
from core.procs import wait_until
from core.routestore import PostgresRouteStore
from core.rules import RuleSet, load_rules


class FacadeClient:
    """Talk to one running stack the way a portal, an operator and an auditor would."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.url = stack.urls["facade"]
        self.auth = {"Authorization": f"Bearer {stack.api_key}"}
        self.rules: RuleSet = load_rules(stack.options.rules_path)
        self.engine = make_engine(stack.urls["control"], pool_size=2)
        self.routes = PostgresRouteStore(self.engine)
        self.legacy_engine = make_engine(stack.urls["legacy_db"], pool_size=2)

    def request(self, method: str, path: str, fresh: bool = True, **kwargs: Any) -> requests.Response:
        """Send one portal request; a fresh connection each time so every gunicorn worker gets its share."""
        headers = {**self.auth, **kwargs.pop("headers", {})}
        if fresh:
            headers["Connection"] = "close"
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def pay(self, key: str | None = None, **fields: str) -> requests.Response:
        body = {"from_account": "1", "to_account": "2", "amount": "1.00", "currency": "EUR", **fields}
        return self.request("POST", "/v1/payments", json=body, headers={"Idempotency-Key": key or uuid.uuid4().hex})

    def set_route(self, capability: str, mode: str, percent: float | None = None) -> int:
        """Change a route and return once every facade worker uses it (their lowest route version has caught up)."""
        state = self.routes.set(self.rules.capabilities[capability], mode, percent, "tests", f"test sets {mode}")
        wait_until(lambda: self.route_version_everywhere() >= state.version, 3, what="every worker to see the route")
        return state.version

    def route_version_everywhere(self) -> int:
        """Return the lowest route version any live facade worker is using (from the merged metrics)."""
        return self.stack.route_version_everywhere()

    def faults(self, **faults: Any) -> None:
        response = requests.put(self.stack.urls["legacy"] + "/__admin/faults", json=faults, timeout=5)
        response.raise_for_status()

    def cloud_faults(self, **faults: Any) -> None:
        """Switch faults on the sandbox cloud service (latency_ms, error_rate, ...); `reset()` clears them."""
        response = requests.put(self.stack.urls["cloud"] + "/__admin/faults", json=faults, timeout=5)
        response.raise_for_status()

    def reset(self) -> None:
        """No faults, every route as the rules file says, and every worker's legacy breaker closed again."""
        requests.delete(self.stack.urls["legacy"] + "/__admin/faults", timeout=5).raise_for_status()
        requests.delete(self.stack.urls["cloud"] + "/__admin/faults", timeout=5).raise_for_status()
        wait_until(self.breakers_closed, 15, interval=0.1, what="every worker's legacy breaker to close")
        for name, state in self.routes.current().items():
            cap = self.rules.capabilities[name]
            if (state.mode, state.percent) != (cap.mode, cap.canary.percent if cap.mode == "canary" else 0.0):
                self.set_route(name, cap.mode, cap.canary.percent if cap.mode == "canary" else None)

    def breakers_closed(self) -> bool:
        """Send one read (a half-open breaker needs a trial call) and report whether no worker's breaker is open."""
        self.request("GET", "/v1/accounts/1/balance")
        metrics = requests.get(self.url + "/metrics", timeout=5).text
        return 'strangler_breaker_state{upstream="legacy"} 0.0' in metrics

    def answered_by(self, path: str, upstream: str, times: int = 20) -> bool:
        """Return True when `times` fresh requests in a row are answered by `upstream`."""
        return all(self.request("GET", path).headers.get("X-Strangler-Upstream") == upstream for _ in range(times))

    def await_upstream(self, path: str, upstream: str, timeout: float = 5.0) -> None:
        wait_until(lambda: self.answered_by(path, upstream), timeout, what=f"{path} answered by {upstream}")

    def update_profile(self, customer: int | str, **fields: str) -> requests.Response:
        return self.request("PATCH", f"/v1/customers/{customer}/profile", json=fields, fresh=False)

    def update_states(self, request_ids: list[str]) -> dict[str, str]:
        """Return each accepted update's state straight from the control plane."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT request_id, state FROM strangler.event_requests WHERE request_id = ANY(:ids)"),
                {"ids": request_ids},
            )
            return {row.request_id: row.state for row in rows}

    def await_applied(self, request_ids: list[str], timeout: float = 60.0) -> None:
        """Wait until every update is applied; fail at once if one failed."""

        def done() -> bool:
            states = self.update_states(request_ids)
            failed = {k: v for k, v in states.items() if v == "failed"}
            assert not failed, f"updates failed: {failed}"
            return len(states) == len(request_ids) and set(states.values()) == {"applied"}

        wait_until(done, timeout, interval=0.2, what=f"{len(request_ids)} updates applied")

    def legacy_apply_log(self) -> dict[str, list[str]]:
        """Return, per zero-padded customer number, the update references legacy applied, in the order it did."""
        with self.legacy_engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT custno, updref FROM cbs.profupd_log ORDER BY logno"))
            log: dict[str, list[str]] = {}
            for row in rows:
                log.setdefault(row.custno.strip(), []).append(row.updref)
            return log

    def ledger(self) -> dict[str, int]:
        """Return the legacy ledger's invariant figures."""
        response = requests.get(self.stack.urls["legacy"] + "/__admin/ledger", timeout=5)
        response.raise_for_status()
        return {k: int(v) for k, v in response.json().items()}

    def cloud_ledger(self) -> dict[str, str]:
        """Return the cloud store's ledger figures (amounts as decimal strings)."""
        response = requests.get(self.stack.urls["cloud"] + "/__admin/ledger", timeout=5)
        response.raise_for_status()
        return {k: str(v) for k, v in response.json().items()}

    def postings(self, reference: str) -> int:
        """Return how many posted payments legacy holds under one reference."""
        with self.legacy_engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT count(*) FROM cbs.payments WHERE refno = :r AND stat = 'PSTD'"), {"r": reference}
                ).scalar_one()
            )
