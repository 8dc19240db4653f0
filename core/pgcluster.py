"""Start a throwaway PostgreSQL cluster with wal_level=logical on a free loopback port, as the postgres user."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN_CANDIDATES = ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")

CONF = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockdir}'
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
max_connections = 300
fsync = {fsync}
synchronous_commit = {synchronous_commit}
full_page_writes = {fsync}
shared_buffers = 128MB
log_min_messages = warning
"""


class ClusterError(RuntimeError):
    """The throwaway cluster could not be created or started."""


def find_pg_bin() -> Path:
    """Return the directory holding initdb/pg_ctl, or raise ClusterError naming what to install."""
    for candidate in PG_BIN_CANDIDATES:
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    raise ClusterError("PostgreSQL server binaries not found; install them: apt-get install -y postgresql")


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    # initdb and pg_ctl refuse root; run them as the postgres user when we are root.
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    return subprocess.run(argv, check=False, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]


@dataclass
class PgCluster:
    """One running throwaway cluster; `stop()` (or the context manager) removes it with its data."""

    root: Path
    port: int
    bin_dir: Path
    durable: bool = False
    _started: bool = field(default=False, init=False)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def pid(self) -> int:
        """The postmaster's process id, from its pid file (benchmarks read its process tree's CPU time)."""
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])

    def url(self, dbname: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        """Return the SQLAlchemy URL for one database of this cluster."""
        return f"{driver}://postgres@127.0.0.1:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        """Return a libpq DSN for one database of this cluster."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def start(self) -> PgCluster:
        """Initialise and start the cluster; returns once it accepts connections, else raises ClusterError."""
        if os.geteuid() == 0:
            pg = pwd.getpwnam("postgres")
            os.chown(self.root, pg.pw_uid, pg.pw_gid)
        self.root.chmod(0o755)
        # Parents must be traversable by postgres (a tempdir under /tmp is).
        res = _as_postgres(
            [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
        )
        if res.returncode != 0:
            raise ClusterError(f"initdb failed: {res.stderr.strip()}")
        durable = "on" if self.durable else "off"
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(CONF.format(port=self.port, sockdir=self.root, fsync=durable, synchronous_commit=durable))
        with open(self.data_dir / "pg_hba.conf", "a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        self._pg_ctl_start()
        self._started = True
        return self

    def _pg_ctl_start(self) -> None:
        res = _as_postgres(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.root / "server.log"), "-w", "start"]
        )
        if res.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:]
            raise ClusterError(f"pg_ctl start failed: {res.stderr.strip()}\n{log}")

    def restart(self, mode: str = "fast") -> None:
        """Stop the server (mode fast or immediate) and start it again on the same port and data."""
        _as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"])
        self._pg_ctl_start()

    def create_database(self, name: str) -> str:
        """Create one database and return its SQLAlchemy URL."""
        res = subprocess.run(
            [str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-v",
             "ON_ERROR_STOP=1", "-qc", f'CREATE DATABASE "{name}"'],
            check=False, capture_output=True, text=True,
        )  # fmt: skip
        if res.returncode != 0:
            raise ClusterError(f"create database {name} failed: {res.stderr.strip()}")
        return self.url(name)

    def stop(self) -> None:
        """Stop the server immediately and delete its files."""
        if self._started:
            _as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"])
            self._started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_cluster(durable: bool = False, base_dir: str | None = None) -> PgCluster:
    """Create and start a throwaway cluster in a new temporary directory and return it."""
    root = Path(tempfile.mkdtemp(prefix="strangler-pg-", dir=base_dir))
    cluster = PgCluster(root=root, port=free_port(), bin_dir=find_pg_bin(), durable=durable)
    try:
        return cluster.start()
    except BaseException:
        cluster.stop()
        raise
