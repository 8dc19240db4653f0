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
import sqlalchemy as sa
from rich.console import Console

from cli.stack import Stack, StackOptions
from core import db
from core.db import make_engine
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
        console.print(f"admin API     {stack.urls['facade']}/admin/v1   (Authorization: Bearer {stack.admin_key})")
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
        """Send one request to the facade as the portal (or with the headers given) and print the answer."""
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

    def cli(self, *args: str, check: bool = True) -> None:
        """Run a `strangler` command against the stack and print what it says."""
        cmd = [sys.executable, "-m", "cli.main", *args]
        self.console.print(f"  $ strangler {' '.join(a if ' ' not in a else repr(a) for a in args)}")
        env = {**os.environ, **self.stack.facade_env, "STRANGLER_ACTOR": "demo", "COLUMNS": "140"}
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        # Progress logs go to stderr; the demo shows them only when the command refused or failed.
        shown = result.stdout + (result.stderr if result.returncode != 0 else "")
        self.console.out(shown.rstrip(), highlight=False)
        if check and result.returncode != 0:
            raise click.ClickException(f"strangler {args[0]} exited {result.returncode}")

    def mode_everywhere(self, capability: str, mode: str) -> bool:
        """True once the route says `mode` and every facade worker runs that route version (merged metrics: min)."""
        with make_engine(self.stack.urls["control"], pool_size=1).connect() as conn:
            row = conn.execute(
                sa.select(db.routes.c.mode, db.routes.c.version).where(db.routes.c.capability == capability)
            ).first()
        if row is None or row[0] != mode:
            return False
        return self.stack.route_version_everywhere() >= int(row[1])

    def comparisons(self) -> int:
        with make_engine(self.stack.urls["control"], pool_size=1).connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(db.comparisons)).scalar_one())

    def cloud_ledger_total(self) -> str:
        return str(requests.get(self.stack.urls["cloud"] + "/__admin/ledger", timeout=5).json()["total_balance"])

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
        step("5. a parallel run: legacy answers, the cloud service is shadowed off the caller's path")
        self.routes("set", "accounts.balance", "--mode", "parallel", "--reason", "demo: collect evidence")
        self.routes("set", "payments.create", "--mode", "parallel", "--reason", "demo: shadow payments (dry run)")
        wait_until(lambda: self.mode_everywhere("payments.create", "parallel"), 5, what="the route change")
        cloud_total = self.cloud_ledger_total()
        for account in range(1, 21):
            self.http.get(f"{self.stack.urls['facade']}/v1/accounts/{account}/balance", timeout=10).raise_for_status()
        self.call("GET", "/v1/accounts/3/balance")
        shadowed = {**payment, "description": "  demo  shadowed payment "}
        self.call("POST", "/v1/payments", json=shadowed, headers={"Idempotency-Key": f"demo-{uuid.uuid4()}"})
        wait_until(lambda: self.comparisons() >= 22, 30, what="the shadow comparisons to be stored")
        self.cli("report", "--capability", "accounts.balance", "--capability", "payments.create", "--since", "1h")
        step("6. a cutover is refused while the evidence says NOT READY; --force records why")
        self.cli("routes", "set", "accounts.balance", "--mode", "cloud", "--reason", "demo: try cutover", check=False)
        self.routes("set", "accounts.balance", "--mode", "cloud", "--force", "--reason", "demo: forced, read-only")
        wait_until(lambda: self.answered_by("cloud"), 5, what="the facade to follow the route change")
        self.call("GET", "/v1/accounts/1/balance")
        self.console.print("  (the cloud store is fed from legacy by CDC, so it already shows the payment above)")
        self.console.print("  the admin API rolls it back (what `strangler routes rollback` does, over HTTP):")
        admin = {"Authorization": f"Bearer {self.stack.admin_key}"}
        rollback = "/admin/v1/routes/accounts.balance/rollback"
        if self.call("POST", rollback, json={"reason": "demo over"}, headers=admin).status_code != 200:
            raise click.ClickException("the admin API refused the rollback")
        self.routes("set", "payments.create", "--mode", "legacy", "--reason", "demo over")
        wait_until(lambda: self.answered_by("legacy"), 5, what="the facade to follow the rollback")
        self.routes("history", "accounts.balance")
        step("7. data reconciliation: legacy tables against their CDC copies in the cloud store")
        self.cli("reconcile", "--source-url", self.stack.urls["legacy_db"], "--target-url", self.stack.urls["cloud_db"])
        step("8. money is conserved, and the shadow payment moved none in the cloud store")
        after, cloud_after = self.ledger_total(), self.cloud_ledger_total()
        self.console.print(f"  legacy ledger total before {total} cents, after {after} cents")
        self.console.print(f"  cloud ledger total while shadowed: before {cloud_total}, after {cloud_after}")
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
