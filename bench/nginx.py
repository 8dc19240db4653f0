"""A throwaway nginx reverse proxy (upstream keep-alive, no access log) in front of one HTTP server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import requests

from core.pgcluster import free_port
from core.procs import wait_until

CONFIG = """\
daemon off;
master_process on;
worker_processes {workers};
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    upstream backend {{
        server {upstream};
        keepalive 128;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=2048;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code < 500
    except requests.RequestException:
        return False


@dataclass
class NginxProxy:
    """nginx on a free loopback port proxying to `upstream` ("host:port"); a context manager that always stops it."""

    upstream: str
    workers: str = "1"
    probe_path: str = "/healthz"
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-nginx-")))
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Return the master's pid while it runs."""
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def start(self) -> NginxProxy:
        """Write the config, start nginx in its own process group, and return once it proxies; else raise."""
        os.chmod(self.root, 0o755)  # the workers run as an unprivileged user
        conf = self.root / "nginx.conf"
        conf.write_text(CONFIG.format(workers=self.workers, root=self.root, upstream=self.upstream, port=self.port))
        argv = ["nginx", "-p", str(self.root), "-c", str(conf), "-e", str(self.root / "error.log")]
        with open(self.root / "stdout.log", "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(lambda: self.pid is None or _answers(self.url + self.probe_path), 10, what="nginx")
            if self.pid is None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}: {self._log_tail()}")
        except BaseException:
            self.stop()
            raise
        return self

    def _log_tail(self) -> str:
        logs = [self.root / "stdout.log", self.root / "error.log"]
        return "".join(p.read_text(errors="replace")[-2000:] for p in logs if p.exists())

    def version(self) -> str:
        """Return nginx's version line."""
        return subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False).stderr.strip()

    def stop(self) -> None:
        """Stop the process group (graceful QUIT, then KILL after 5 s) and delete the files."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGQUIT)
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> NginxProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
