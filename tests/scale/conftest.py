"""Real processes sharing one PostgreSQL database and one Redis prefix (the test fixtures')."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SECRET, free_port

ROOT = Path(__file__).resolve().parents[2]


def base_env(database_url: str, data_dir: Path, **settings: str) -> dict[str, str]:
    """This process's environment without its ``TENANTKIT_*`` settings, plus a deployment's.

    ``settings`` are more ``TENANTKIT_*`` values, named without the prefix
    (``redis_url="redis://..."``).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTKIT_")}
    env.update(
        {
            "TENANTKIT_ENV": "test",
            "TENANTKIT_JWT_SECRET": SECRET,
            "TENANTKIT_DATABASE_URL": database_url,
            "TENANTKIT_BCRYPT_ROUNDS": "4",
            "TENANTKIT_RATE_LIMIT_AUTH": "10000/minute",
            "TENANTKIT_DATA_DIR": str(data_dir),
            "TENANTKIT_LOG_LEVEL": "WARNING",
            "TENANTKIT_DISABLE_PLUGIN_AUTOLOAD": "1",
        }
    )
    env.update({f"TENANTKIT_{name.upper()}": value for name, value in settings.items()})
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


@pytest.fixture(params=["redis", "cluster"])
def deployment_env(request: pytest.FixtureRequest, pg_url: str, tmp_path: Path) -> dict[str, str]:
    """The ``TENANTKIT_*`` environment of one deployment: this test's database and Redis prefix.

    Once on the shared Redis, once on the session's private Redis Cluster (``-k cluster``).
    """
    if request.param == "cluster":  # a private cluster for the session: a fresh prefix, no cleanup
        nodes = request.getfixturevalue("redis_cluster").nodes
        return base_env(
            pg_url,
            tmp_path / "data",
            redis_cluster_nodes=nodes,
            redis_key_prefix=f"tkc:{uuid.uuid4().hex[:12]}:",
        )
    redis_url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return base_env(pg_url, tmp_path / "data", redis_url=redis_url, redis_key_prefix=prefix)


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> int:
    """SIGTERM, then SIGKILL after ``timeout``; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


def log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@contextlib.contextmanager
def started(env: dict[str, str], log: Path, *command: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``python -m <command...>`` from the project root, logging to ``log``; stop it afterwards."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", *command], cwd=ROOT, env=env, stdout=out, stderr=out
        )
        try:
            yield process
        finally:
            stop(process)


def wait_healthy(base: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    """Until ``base``/health answers 200 (the server process must stay up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, f"server exited ({process.returncode}): {log_tail(log)}"
        assert time.monotonic() < deadline, f"server not healthy in {timeout}s: {log_tail(log)}"
        time.sleep(0.1)


PASSWORD = "correct horse battery"
ROUNDS = 8  # requests per server for every check: both of A's processes answer some


class Deployment:
    """Clients of server A (``--workers 2``) and server B, without keep-alive."""

    def __init__(self, a: str, b: str) -> None:
        self.a, self.b = a, b
        self.http = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=15)

    def call(self, base: str, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, base + path, headers=headers, **kw)

    def everywhere(self, path: str, token: str, expected: int) -> None:
        """GET ``path`` ROUNDS times on each server: every answer is ``expected``."""
        for base in (self.a, self.b):
            statuses = [self.call(base, "GET", path, token).status_code for _ in range(ROUNDS)]
            assert statuses == [expected] * ROUNDS, (base, path, statuses)

    def login(self, base: str, email: str) -> str:
        response = self.call(base, "POST", "/auth/login", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


@pytest.fixture
def deployment(deployment_env: dict[str, str], tmp_path: Path) -> Iterator[Deployment]:
    port_a, port_b = free_port(), free_port()
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    serve = ("inventory_app.cli", "serve", "--host", "127.0.0.1")
    with (
        started(deployment_env, log_a, *serve, "--port", str(port_a), "--workers", "2") as a,
        started(deployment_env, log_b, *serve, "--port", str(port_b), "--no-migrate") as b,
    ):
        base_a, base_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        wait_healthy(base_a, a, log_a)
        wait_healthy(base_b, b, log_b)
        found = Deployment(base_a, base_b)
        try:
            yield found
        finally:
            found.http.close()
        # Both stop cleanly on SIGTERM (one uvicorn process re-raises the signal it shut down on).
        assert stop(a) in (0, -signal.SIGTERM), log_tail(log_a)
        assert stop(b) in (0, -signal.SIGTERM), log_tail(log_b)
