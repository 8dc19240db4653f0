"""The canary guard through the real stack: a failing cloud side sends a shadowed canary back to legacy, once."""

from __future__ import annotations

import uuid

from click.testing import CliRunner

from cli.main import main
from core.procs import wait_until
from tests.stackclient import FacadeClient


def test_the_guard_rolls_a_failing_canary_back_with_the_evidence(facade: FacadeClient) -> None:
    version = facade.set_route("accounts.balance", "canary", 50)
    facade.cloud_faults(error_rate=1.0)  # cloud answers 503 to its canary keys and to every legacy key's shadow
    answered: set[tuple[int, str]] = set()

    def rolled_back() -> bool:
        for account in range(1, 41):
            answer = facade.request(
                "GET", f"/v1/accounts/{account}/balance", headers={"X-Request-ID": f"guard-{uuid.uuid4().hex[:12]}"}
            )
            answered.add((answer.status_code, answer.headers["X-Strangler-Upstream"]))
        return facade.routes.current()["accounts.balance"].mode == "legacy"

    wait_until(rolled_back, 30, interval=0.2, what="the guard to roll the canary back")
    assert (200, "legacy") in answered  # legacy's keys kept their answers throughout

    entries = [e for e in facade.routes.history("accounts.balance", 20) if e.version > version]
    assert [(e.actor, e.from_mode, e.from_percent, e.to_mode) for e in entries] == [("guard", "canary", 50, "legacy")]
    assert entries[0].reason.startswith("guard: error rate ") and "comparisons in 300s" in entries[0].reason

    result = CliRunner().invoke(
        main, ["routes", "history", "accounts.balance"], env={**facade.stack.facade_env, "COLUMNS": "250"}
    )
    assert result.exit_code == 0 and "guard" in result.output and "guard: error rate" in result.output
    facade.await_upstream("/v1/accounts/1/balance", "legacy")
