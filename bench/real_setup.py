"""Resources and set-up of ``bench.real``: a throwaway database and Redis prefix, the servers, the seed.

Everything the benchmark needs is created through the public surface: the
database is migrated with the example app's migrations, the brand, its owner,
the products and the sessions come from the app's HTTP API. Only the bare
rotation endpoint's first refresh tokens are inserted directly (on the seeded,
live session): that endpoint is the floor, not tenantkit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import PG_ADMIN_URL

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TENANTKIT_BENCH_REDIS", "redis://127.0.0.1:6379/0")
SECRET = "bench-real-" + "x" * 40
PASSWORD = "bench-password-123"

# This checkout's code for the set-up done in this process (PYTHONPATH, if set, comes first).
for _extra in (ROOT / "src", ROOT / "examples"):
    if str(_extra) not in sys.path:
        sys.path.append(str(_extra))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reachable(url: str, default_port: int) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((parts.hostname or "127.0.0.1", parts.port or default_port)) == 0


# --------------------------------------------------------------------------- #
# Throwaway resources
# --------------------------------------------------------------------------- #


async def _admin(sql: str, *args: Any, database: str | None = None) -> Any:
    import asyncpg

    url = PG_ADMIN_URL if database is None else f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{database}"
    connection = await asyncpg.connect(url, timeout=5)
    try:
        return await connection.fetch(sql, *args)
    finally:
        await connection.close()


async def _migrate(name: str, data_dir: Path) -> None:
    from inventory_app.app import create_kit
    from tenantkit import Settings
    from tenantkit.db.migrate import upgrade

    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    settings = Settings.load(env="test", jwt_secret=SECRET, database_url=f"{base}/{name}", data_dir=data_dir)
    kit = create_kit(settings, autoload_plugins=False)
    try:
        await upgrade(kit.database, kit.migration_locations)
    finally:
        await kit.database.dispose()


@contextlib.contextmanager
def throwaway(data_dir: Path) -> Iterator[tuple[str, str]]:
    """A migrated PostgreSQL database and a Redis key prefix, both removed afterwards."""
    import redis

    name = f"tk_bench_real_{os.getpid()}"
    prefix = f"tkbench:{uuid.uuid4().hex[:12]}:"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(_migrate(name, data_dir))
        yield name, prefix
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        client = redis.Redis.from_url(REDIS_URL)
        keys = []
        try:
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
        print(f"  cleaned up: database {name} dropped, {len(keys)} Redis key(s) under {prefix} deleted")


class Server:
    """One uvicorn subprocess of :mod:`bench.real_servers`."""

    def __init__(self, kind: str, config: dict[str, Any], data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config_file = data_dir / f"{kind}.json"
        config_file.write_text(json.dumps(config))
        paths = [str(ROOT), str(ROOT / "src"), str(ROOT / "examples"), os.environ.get("PYTHONPATH", "")]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in paths if p),
            "TENANTKIT_DISABLE_PLUGIN_AUTOLOAD": "1",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.real_servers", kind, str(self.port), str(config_file)],
            cwd=ROOT,
            env=env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the {kind} server exited with {self.process.returncode}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the {kind} server did not start in time")

    def rss_mb(self) -> float:
        """Resident set size of the server process, MB."""
        for text in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if text.startswith("VmRSS:"):
                return int(text.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --------------------------------------------------------------------------- #
# Set-up through the public HTTP API
# --------------------------------------------------------------------------- #


def seed(app: Server, chains: int, products: int) -> dict[str, Any]:
    """Register a brand owner, add products, log in once per rotation chain."""
    import httpx

    with httpx.Client(base_url=app.url, timeout=60) as client:
        account = {"email": "owner@bench.example", "password": PASSWORD}
        response = client.post("/auth/register", json={**account, "tenant_name": "Bench"})
        assert response.status_code == 201, response.text
        logins = []
        for _ in range(chains + 1):
            response = client.post("/auth/login", json=account)
            assert response.status_code == 200, response.text
            logins.append(response.json())
        headers = {"Authorization": f"Bearer {logins[0]['access_token']}"}
        for i in range(products):
            body = {"sku": f"SKU-{i:04d}", "name": f"Product {i}", "price": "9.99", "stock": 10}
            response = client.post("/products", json=body, headers=headers)
            assert response.status_code == 201, response.text
        me = client.get("/auth/me", headers=headers)
        assert me.status_code == 200, me.text
    return {
        "account": account,
        "token": logins[0]["access_token"],
        "refresh": [login["refresh_token"] for login in logins[1:]],
        "probe_refresh": logins[0]["refresh_token"],
        "me": me.json(),
    }


async def bare_chains(database: str, refresh_token: str, chains: int) -> list[str]:
    """Refresh tokens for the bare endpoint's chains, on the seeded (live) session."""
    import hashlib
    import secrets
    from datetime import UTC, datetime, timedelta

    digest = hashlib.sha256(refresh_token.encode()).digest()
    rows = await _admin("SELECT session_id FROM refresh_tokens WHERE digest = $1", digest, database=database)
    tokens = [secrets.token_urlsafe(32) for _ in range(chains)]
    now = datetime.now(UTC)
    for token in tokens:
        await _admin(
            "INSERT INTO refresh_tokens (id, session_id, digest, created_at, expires_at) "
            "VALUES ($1, $2, $3, $4, $5)",
            uuid.uuid4(),
            rows[0]["session_id"],
            hashlib.sha256(token.encode()).digest(),
            now,
            now + timedelta(days=7),
            database=database,
        )
    return tokens


def unavailable() -> str | None:
    """Why a benchmark of the deployment (PostgreSQL + Redis, driven by wrk) cannot run here, or None."""
    from bench import wrk
    from bench.common import PG_ADMIN_URL

    if not wrk.available():
        return f"wrk not found ({wrk.WRK})"
    if not reachable(PG_ADMIN_URL, 5432):
        return f"PostgreSQL not reachable ({PG_ADMIN_URL})"
    if not reachable(REDIS_URL, 6379):
        return f"Redis not reachable ({REDIS_URL})"
    return None


def stop_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit``, so the servers stop and the throwaway database goes."""

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
