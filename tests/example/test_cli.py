"""``inventory-app seed`` and ``serve`` as a user runs them: real processes, the embedded default."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

# in_process: these start servers of their own (the embedded default), not the suite's server.
pytestmark = pytest.mark.in_process

LOGIN = re.compile(r"^\s+(\w+)\s+(ADMIN|USER)\s+(\S+@\S+)\s+password: (\S+)$", re.MULTILINE)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "TENANTKIT_ENV": "development",
        "TENANTKIT_DATA_DIR": str(tmp_path / "data"),
        "TENANTKIT_BCRYPT_ROUNDS": "4",
        "TENANTKIT_DISABLE_PLUGIN_AUTOLOAD": "1",
        "TENANTKIT_LOG_LEVEL": "WARNING",
        **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}),
    }


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inventory_app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def served(env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """``inventory-app serve`` on a free port: (base URL, everything printed before it listened)."""
    with serving(env) as started:
        yield started


@contextlib.contextmanager
def serving(env: dict[str, str], *args: str) -> Iterator[tuple[str, str]]:
    """Run ``inventory-app serve --port <free> *args`` until it answers /health."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "inventory_app.cli", "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        printed: list[str] = []
        assert process.stdout is not None
        for line in process.stdout:
            printed.append(line)
            if line.startswith("inventory-app on"):
                break
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "".join(printed)
            assert time.monotonic() < deadline, "".join(printed)
            time.sleep(0.1)
        yield base, "".join(printed)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_serve_seeds_the_embedded_default_and_prints_working_logins(served: tuple[str, str]) -> None:
    base, printed = served
    logins = LOGIN.findall(printed)
    assert {(brand, role) for brand, role, _, _ in logins} == {
        ("acme", "ADMIN"),
        ("acme", "USER"),
        ("globex", "ADMIN"),
        ("globex", "USER"),
    }
    brand, role, email, password = next(login for login in logins if login[1] == "USER")
    response = httpx.post(f"{base}/auth/login", json={"email": email, "password": password}, timeout=10)
    assert response.status_code == 200, response.text
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    products = httpx.get(f"{base}/products", headers=headers, timeout=10)
    assert products.status_code == 200
    assert len(products.json()["items"]) >= 3
    assert httpx.get(f"{base}/health", timeout=10).json()["redis"] == "in-memory"


def test_seed_is_idempotent(env: dict[str, str]) -> None:
    first = run(env, "seed")
    assert first.returncode == 0, first.stderr
    second = run(env, "seed")
    assert second.returncode == 0, second.stderr
    assert LOGIN.findall(first.stdout) == LOGIN.findall(second.stdout)
    assert len(LOGIN.findall(second.stdout)) == 4


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def test_serve_uses_uvloop_and_httptools_when_installed(served: tuple[str, str]) -> None:
    _, printed = served
    line = next(line for line in printed.splitlines() if line.startswith("inventory-app on"))
    assert ("uvloop" if _installed("uvloop") else "asyncio") in line, line
    assert ("httptools" if _installed("httptools") else "h11") in line, line


def test_serve_falls_back_to_asyncio_and_h11_without_the_speed_extra(
    env: dict[str, str], tmp_path: Path
) -> None:
    """With uvloop and httptools unimportable (as without ``tenantkit[speed]``) it still serves."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    for name in ("uvloop", "httptools"):
        (hidden / f"{name}.py").write_text(f"raise ImportError('{name} is not installed')\n")
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(hidden), env.get("PYTHONPATH")]))}
    with serving(env) as (base, printed):
        assert "asyncio, h11" in printed, printed
        assert httpx.get(f"{base}/health", timeout=10).status_code == 200


def test_serve_refuses_several_workers_without_redis(env: dict[str, str]) -> None:
    result = run(env, "serve", "--workers", "2", "--no-migrate")
    assert result.returncode == 2, result.stderr
    assert "TENANTKIT_REDIS_URL" in result.stderr
    bad = run(env, "serve", "--workers", "0")
    assert bad.returncode == 2
    assert "at least 1" in bad.stderr
