"""Start the whole development stack (PostgreSQL, sandbox legacy and cloud, the facade) and stop it again."""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import requests
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from core.broker import EmbeddedBroker
from core.db import make_engine
from core.pgcluster import PgCluster, free_port, start_cluster
from core.procs import Service, ServiceError, start_service, wait_until


@dataclass
class StackOptions:
    """How big and where: tests, the demo and the benchmarks each pick their own."""

    customers: int = 1000
    rules_path: Path = Path("routing_rules.yaml")
    facade_workers: int = 2
    facade_threads: int = 32
    legacy_workers: int = 2
    legacy_threads: int = 32
    cloud_workers: int = 1
    cloud_threads: int = 16
    extra_env: dict[str, str] = field(default_factory=dict)
    # Existing databases by role (control, legacy, cloud); a throwaway cluster serves the roles not given.
    database_urls: dict[str, str] = field(default_factory=dict)
    log: Callable[[str], None] = lambda line: None
    keep_logs: bool = False
    extra_clients: dict[str, str] = field(default_factory=dict)  # client id -> API token, besides the stack's own
    events_pipeline: bool = True  # the broker (embedded unless STRANGLER_KAFKA_BOOTSTRAP is given), relay and applier
    applier_workers: int = 8
    replication: bool = True  # the cloud store is filled from legacy by CDC instead of being seeded


@dataclass
class Stack:
    """A running stack; `stop()` (or leaving the `with` block) ends every process and deletes the throwaway data."""

    options: StackOptions
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="strangler-stack-")))
    cluster: PgCluster | None = None
    broker: EmbeddedBroker | None = None
    services: dict[str, Service] = field(default_factory=dict)
    api_key: str = field(default_factory=lambda: "dev-" + secrets.token_hex(16))
    client_id: str = "portal"
    admin_key: str = field(default_factory=lambda: "adm-" + secrets.token_hex(16))  # the admin API's, as `operator`
    urls: dict[str, str] = field(default_factory=dict)
    _sigterm: Any = field(default=None, init=False, repr=False)  # the SIGTERM handler replaced (None: none)

    @property
    def faults_file(self) -> Path:
        return self.workdir / "legacy-faults.json"

    @property
    def facade_env(self) -> dict[str, str]:
        """The environment a facade process (or a CLI command) of this stack runs with."""
        return {
            "STRANGLER_DATABASE_URL": self.urls["control"],
            "STRANGLER_RULES": str(self.options.rules_path.resolve()),
            "STRANGLER_UPSTREAM_LEGACY_URL": self.urls["legacy"],
            "STRANGLER_UPSTREAM_CLOUD_URL": self.urls["cloud"],
            **({"STRANGLER_KAFKA_BOOTSTRAP": self.urls["kafka"]} if "kafka" in self.urls else {}),
            "STRANGLER_API_KEYS": ",".join(
                f"{client}:{token}"
                for client, token in {self.client_id: self.api_key, **self.options.extra_clients}.items()
            ),
            "STRANGLER_ADMIN_KEYS": f"operator:{self.admin_key}",
            **self.options.extra_env,
        }

    def route_version_everywhere(self) -> int:
        """The lowest route version any live facade worker uses (the gauge is merged with `livemin`)."""
        version = gauge(self.urls["facade"], "strangler_route_version")
        if version is None:
            raise RuntimeError(f"the facade at {self.urls['facade']} reports no strangler_route_version")
        return int(version)

    def start(self) -> Stack:
        """Start everything, in dependency order; on any failure stop what was started and re-raise."""
        # Its processes run in their own sessions, so a terminated owner would leave them running: unless the program
        # handles SIGTERM itself (`strangler up` does), SIGTERM interrupts it like Ctrl-C and the stack is stopped.
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            self._sigterm = signal.signal(signal.SIGTERM, _interrupt)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        opts, logs = self.options, self.workdir / "logs"
        missing = [role for role in ("control", "legacy", "cloud") if role not in opts.database_urls]
        if missing:
            opts.log("starting PostgreSQL (throwaway cluster, wal_level=logical)")
            self.cluster = start_cluster()
        for role in ("control", "legacy", "cloud"):
            given = opts.database_urls.get(role)
            assert given or self.cluster
            self.urls[role + "_db"] = given or self.cluster.create_database(role)  # type: ignore[union-attr]
        self.urls["control"] = self.urls.pop("control_db")
        py = sys.executable
        for system in ("legacy", "cloud"):
            customers = 0 if system == "cloud" and opts.replication else opts.customers
            opts.log(f"creating the sandbox {system} database with {customers} customers")
            self._run([py, "-m", "sandbox", system, "init-db", "--database-url", self.urls[f"{system}_db"],
                       "--customers", str(customers)])  # fmt: skip
        if opts.replication:
            self._start_replication()
        for system, workers, threads in (
            ("legacy", opts.legacy_workers, opts.legacy_threads),
            ("cloud", opts.cloud_workers, opts.cloud_threads),
        ):
            port = free_port()
            self.urls[system] = f"http://127.0.0.1:{port}"
            argv = [py, "-m", "sandbox", system, "serve", "--database-url", self.urls[f"{system}_db"],
                    "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads)]  # fmt: skip
            if system == "legacy":
                argv += ["--faults-file", str(self.faults_file)]
            opts.log(f"starting the sandbox {system} system on {self.urls[system]}")
            self.services[system] = start_service(system, argv, self.urls[system], logs)
        if opts.events_pipeline:
            self._start_events_pipeline()
        port = free_port()
        self.urls["facade"] = f"http://127.0.0.1:{port}"
        argv = [py, "-m", "cli.main", "serve", "--bind", f"127.0.0.1:{port}",
                "--workers", str(opts.facade_workers), "--threads", str(opts.facade_threads)]  # fmt: skip
        opts.log(f"starting the facade on {self.urls['facade']}")
        self.services["facade"] = start_service("facade", argv, self.urls["facade"], logs, env=self.facade_env)

    def _start_replication(self) -> None:
        """Run the CDC replicator legacy → cloud store and wait until its snapshot is in the cloud store."""
        port = free_port()
        self.urls["replicator"] = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "cli.main", "replicate", "run", "--source-url", self.urls["legacy_db"],
                "--target-url", self.urls["cloud_db"], "--control-url", self.urls["control"],
                "--metrics-port", str(port), "--progress", "plain"]  # fmt: skip
        self.options.log("starting CDC replication legacy -> cloud store (snapshot, then streaming)")
        self.services["replicator"] = start_service(
            "replicator", argv, self.urls["replicator"], self.workdir / "logs", health_path="/metrics"
        )
        engine = make_engine(self.urls["cloud_db"], pool_size=1)
        count = sa.text("SELECT count(*) FROM cloud.accounts")

        def copied() -> bool:
            # A fresh short transaction each time: an open one would block the snapshot's table locks.
            with engine.connect() as conn:
                return int(conn.execute(count).scalar_one()) >= self.options.customers

        try:
            wait_until(copied, 60, interval=0.1, what="the replicator's snapshot")
        finally:
            engine.dispose()

    def _start_events_pipeline(self) -> None:
        opts = self.options
        given = opts.extra_env.get("STRANGLER_KAFKA_BOOTSTRAP")
        if given:
            self.urls["kafka"] = given
        else:
            opts.log("starting the embedded Kafka-protocol broker (Tansu, memory storage)")
            self.broker = EmbeddedBroker(log_path=self.workdir / "logs" / "broker.log").start()
            self.urls["kafka"] = self.broker.bootstrap
        self.start_worker("relay")
        self.start_worker("applier")

    def start_worker(self, name: str, wait_assigned: bool = True) -> Service:
        """Start (or start again) the relay or the applier, returning once its metrics endpoint answers and, for the
        applier unless told otherwise, once the consumer group gave it partitions (updates sent earlier would wait)."""
        command = {"relay": ["relay"], "applier": ["apply-events", "--workers", str(self.options.applier_workers)]}
        port = free_port()
        self.urls[name] = f"http://127.0.0.1:{port}"
        argv = [
            sys.executable,
            "-m",
            "cli.main",
            *command[name],
            "--metrics-port",
            str(port),
            "--metrics-addr",
            "127.0.0.1",
        ]
        self.options.log(f"starting the {name}")
        service = self.services[name] = start_service(
            name, argv, self.urls[name], self.workdir / "logs", env=self.facade_env, health_path="/metrics"
        )
        if name == "applier" and wait_assigned:
            try:
                wait_until(lambda: assigned_partitions(service.url) > 0, 60, interval=0.1, what="applier partitions")
            except TimeoutError:
                raise ServiceError(f"the applier owns no partition after 60s:\n{service.log_tail()}") from None
        return service

    def _run(self, argv: list[str]) -> None:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:5])} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")

    def stop(self) -> None:
        """Stop the facade first (it calls the others), then the workers, sandbox, broker and PostgreSQL."""
        for name in ("facade", "relay", "applier", "replicator", "cloud", "legacy"):
            service = self.services.pop(name, None)
            if service:
                service.stop()
        if self.broker:
            self.broker.stop()
            self.broker = None
        if self.cluster:
            self.cluster.stop()
            self.cluster = None
        if self.options.keep_logs:
            self.options.log(f"logs kept in {self.workdir / 'logs'}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self._sigterm is not None:
            signal.signal(signal.SIGTERM, self._sigterm)
            self._sigterm = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def gauge(service_url: str, name: str) -> float | None:
    """Return the sum of a gauge's samples on a service's /metrics page; None when the page or the gauge is missing."""
    try:
        response = requests.get(service_url + "/metrics", timeout=5)
        response.raise_for_status()
        families = {family.name: family for family in text_string_to_metric_families(response.text)}
    except (requests.RequestException, ValueError):  # not up yet, or not a metrics page
        return None
    family = families.get(name)
    return None if family is None else sum(sample.value for sample in family.samples)


def assigned_partitions(metrics_url: str) -> int:
    """Return how many partitions the applier behind `metrics_url` owns (0 when its metrics cannot be read)."""
    return int(gauge(metrics_url, "strangler_applier_assigned_partitions") or 0)
