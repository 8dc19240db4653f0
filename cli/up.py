"""`strangler up` (the whole development stack until Ctrl-C) and `strangler demo` (a short scripted walk through it)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import click
import requests
from rich.console import Console

from cli.stack import Stack, StackOptions
from core.procs import wait_until


def _options(customers: int, rules: Path, console: Console) -> StackOptions:
    existing = {
        role: os.environ[var]
        for role, var in (
            ("control", "STRANGLER_DATABASE_URL"),
            ("legacy", "STRANGLER_LEGACY_DATABASE_URL"),
            ("cloud", "STRANGLER_CLOUD_DATABASE_URL"),
        )
        if os.environ.get(var)
    }
    return StackOptions(
        customers=customers, rules_path=rules, database_urls=existing, log=lambda line: console.log(line)
    )


@click.command()
@click.option("--customers", default=1000, show_default=True, help="customers (and accounts) to seed")
@click.option("--rules", default="routing_rules.yaml", show_default=True, type=click.Path(path_type=Path))
def up(customers: int, rules: Path) -> None:
    """Start PostgreSQL, the sandbox legacy core and cloud service, and the facade; stop all on Ctrl-C."""
    console = Console(stderr=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Stack(_options(customers, rules, console)) as stack:
        console.print(f"facade        {stack.urls['facade']}   (Authorization: Bearer {stack.api_key})")
        console.print(f"legacy core   {stack.urls['legacy']}   (faults: {stack.urls['legacy']}/__admin/faults)")
        console.print(f"cloud service {stack.urls['cloud']}")
        console.print(f"control plane {stack.urls['control']}")
        console.print("routes: run `strangler routes ...` with STRANGLER_DATABASE_URL set as above. Ctrl-C stops.")
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        console.log("stopping")


class Walk:
    """The demo's steps against a running stack, each printed as it goes."""

    def __init__(self, stack: Stack, console: Console) -> None:
        self.stack, self.console = stack, console
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {stack.api_key}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = self.http.request(method, self.stack.urls["facade"] + path, timeout=10, **kwargs)
        upstream = response.headers.get("X-Strangler-Upstream", "facade")
        self.console.print(
            f"  {method} {path} -> [bold]{response.status_code}[/] from {upstream}: {response.text.strip()}"
        )
        return response

    def routes(self, *args: str) -> None:
        cmd = [sys.executable, "-m", "cli.main", "routes", *args]
        self.console.print(f"  $ strangler routes {' '.join(args)}")
        env = {**os.environ, **self.stack.facade_env, "STRANGLER_ACTOR": "demo", "COLUMNS": "140"}
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise click.ClickException(result.stderr)
        self.console.out(result.stdout.rstrip(), highlight=False)

    def ledger_total(self) -> int:
        return int(requests.get(self.stack.urls["legacy"] + "/__admin/ledger", timeout=5).json()["total_cents"])

    def answered_by(self, upstream: str) -> bool:
        response = self.http.get(self.stack.urls["facade"] + "/v1/accounts/1/balance", timeout=5)
        return response.headers.get("X-Strangler-Upstream") == upstream

    def run(self) -> None:
        step = self.console.rule
        total = self.ledger_total()
        step("1. a balance, answered by the legacy core through the facade")
        self.call("GET", "/v1/accounts/1/balance")
        step("2. a payment with an Idempotency-Key, then the same request again (replayed, not paid twice)")
        key = f"demo-{uuid.uuid4()}"
        payment = {"from_account": "1", "to_account": "2", "amount": "25.00", "currency": "EUR"}
        first = self.call("POST", "/v1/payments", json=payload_with(payment), headers={"Idempotency-Key": key})
        again = self.call("POST", "/v1/payments", json=payload_with(payment), headers={"Idempotency-Key": key})
        assert first.json()["payment_id"] == again.json()["payment_id"], "a replay must return the same payment"
        self.call("GET", f"/v1/payments/{first.json()['payment_id']}")
        step("3. the same key for a different payment is refused")
        self.call("POST", "/v1/payments", json={**payment, "amount": "26.00"}, headers={"Idempotency-Key": key})
        step("4. a profile update: accepted durably at once (202), applied to legacy by the event pipeline")
        accepted = self.call("PATCH", "/v1/customers/1/profile", json={"email": "demo.customer@example.com"})
        status_url = self.stack.urls["facade"] + accepted.json()["status_url"]
        wait_until(lambda: self.http.get(status_url, timeout=5).json()["status"] == "applied", 30, what="the update")
        self.call("GET", accepted.json()["status_url"])
        step("5. flip accounts.balance to the cloud service, then back (audited)")
        self.routes("set", "accounts.balance", "--mode", "cloud", "--reason", "demo: try the cloud read path")
        wait_until(lambda: self.answered_by("cloud"), 5, what="the facade to follow the route change")
        self.call("GET", "/v1/accounts/1/balance")
        self.console.print("  (the cloud store is fed from legacy by CDC, so it already shows the payment above)")
        self.routes("rollback", "accounts.balance", "--reason", "demo over")
        wait_until(lambda: self.answered_by("legacy"), 5, what="the facade to follow the rollback")
        self.call("GET", "/v1/accounts/1/balance")
        self.routes("history", "accounts.balance")
        step("6. money is conserved")
        after = self.ledger_total()
        self.console.print(f"  legacy ledger total before {total} cents, after {after} cents")
        if after != total:
            raise click.ClickException("the ledger total changed: money was not conserved")


def payload_with(payment: dict[str, str]) -> dict[str, str]:
    return {**payment, "description": "demo payment"}


@click.command()
@click.option("--customers", default=1000, show_default=True)
@click.option("--rules", default="routing_rules.yaml", show_default=True, type=click.Path(path_type=Path))
def demo(customers: int, rules: Path) -> None:
    """Start the stack, walk through balances, payments and a route flip, then stop everything."""
    console = Console(soft_wrap=True)
    with Stack(_options(customers, rules, console)) as stack:
        Walk(stack, console).run()
    console.rule("demo finished; every process stopped")
