"""How the sandbox starts: factories read the environment when called, the CLI seeds and serves, imports go one way."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from core.pgcluster import free_port
from core.procs import start_service
from sandbox.__main__ import main
from sandbox.cloud import app as cloud_app
from sandbox.legacy import app as legacy_app
from sandbox.run import PROJECT_ROOT


@pytest.mark.parametrize("module", [legacy_app, cloud_app])
def test_factories_read_the_environment_when_called(module: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SANDBOX_DATABASE_URL", raising=False)
    with pytest.raises(RuntimeError, match="SANDBOX_DATABASE_URL"):
        module.create_app_from_env()  # type: ignore[attr-defined]
    monkeypatch.setenv("SANDBOX_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("SANDBOX_FAULTS_FILE", "/nonexistent/faults.json")
    app = module.create_app_from_env()  # type: ignore[attr-defined]
    # No database is touched until a request needs it, and the faults file may not exist yet.
    assert app.test_client().get("/healthz").status_code == 200
    assert app.extensions["sandbox.faults"].path == Path("/nonexistent/faults.json")


def test_the_sandbox_imports_no_platform_part_and_reads_no_environment_at_import() -> None:
    code = (
        "import os, sys\n"
        "class Spy(dict):\n"
        "    def __getitem__(self, k):\n"
        "        if k.startswith('SANDBOX'): raise SystemExit('env read at import: ' + k)\n"
        "        return super().__getitem__(k)\n"
        "    def get(self, k, d=None):\n"
        "        if k.startswith('SANDBOX'): raise SystemExit('env read at import: ' + k)\n"
        "        return super().get(k, d)\n"
        "os.environ = Spy(os.environ)\n"
        "import sandbox.__main__, sandbox.run, sandbox.legacy.app, sandbox.cloud.app\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('facade', 'connectors', 'cli', 'replication',"
        " 'parallel_run'))\n"
        "print(bad)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_cli_init_db_seeds_and_serve_runs_gunicorn(new_database: Callable[[str], str], log_dir: Path) -> None:
    url = new_database("sandbox_cli")
    result = CliRunner().invoke(main, ["cloud", "init-db", "--database-url", url, "--customers", "25"])
    assert result.exit_code == 0, result.output
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM cloud.accounts")).scalar_one() == 25
    engine.dispose()
    bind = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "sandbox", "cloud", "serve", "--database-url", url, "--bind", bind,
            "--workers", "1", "--threads", "4", "--faults-file", str(log_dir / "faults.json")]  # fmt: skip
    service = start_service("cli-cloud", argv, f"http://{bind}", log_dir, env={"PYTHONPATH": str(PROJECT_ROOT)})
    try:
        assert requests.get(service.url + "/v1/accounts/25/balance", timeout=10).json()["account_id"] == "25"
        assert requests.get(service.url + "/v1/accounts/26/balance", timeout=10).status_code == 404
        # The faults file given on the command line is the one the workers share.
        requests.put(service.url + "/__admin/faults", json={"error_rate": 1.0}, timeout=10).raise_for_status()
        assert (log_dir / "faults.json").exists()
        assert requests.get(service.url + "/v1/accounts/25/balance", timeout=10).status_code == 503
    finally:
        service.stop()
