"""Latency of an authenticated read while logins run at the machine's bcrypt capacity.

bcrypt at cost 12 is deliberately slow (a few hundred milliseconds of CPU per
check). tenantkit runs it in a thread pool so the event loop keeps serving
everyone else. This benchmark checks that promise: it registers a user, then,
in one process and one event loop, runs N login loops (N = the bcrypt pool
size or the number of CPUs, whichever is larger) against ``POST /auth/login``
while a probe calls ``GET /auth/me`` with a warm token every few milliseconds.

Measured side by side in one run: the probe's latency with no logins running,
then under the storm; logins per second against the raw bcrypt capacity of
the same pool (``checkpw`` calls per second with nothing else running).
Target: probe p99 below 20 ms during the storm.

Requests go through ``httpx.ASGITransport`` (in process, no sockets). The
database is PostgreSQL when ``TENANTKIT_BENCH_PG`` (default
``postgresql://postgres@127.0.0.1:5432/test``) answers, else SQLite;
``TENANTKIT_BENCH_BACKEND=sqlite`` forces SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bcrypt
import httpx

from bench.common import UNLIMITED, figure, headline, line, percentile, scaled, target_text, write_result
from tenantkit import Settings, TenantKit
from tenantkit.db.migrate import upgrade
from tenantkit.mail import MemoryMailer

ADMIN_URL = os.environ.get("TENANTKIT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
ROUNDS = 12
PROBE_INTERVAL = 0.005
TARGET_P99_MS = 20.0
EMAIL = "storm@example.com"
PASSWORD = "storm-password-123"


@contextlib.asynccontextmanager
async def database_url() -> AsyncIterator[tuple[str, str]]:
    """A fresh database: (SQLAlchemy URL, backend name); dropped afterwards."""
    if os.environ.get("TENANTKIT_BENCH_BACKEND", "") != "sqlite":
        try:
            import asyncpg

            admin = await asyncpg.connect(ADMIN_URL, timeout=3)
        except Exception as exc:
            print(f"  (PostgreSQL unavailable: {type(exc).__name__}; using SQLite)")
        else:
            name = f"tk_bench_storm_{os.getpid()}"
            await admin.execute(f'CREATE DATABASE "{name}"')
            base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
            try:
                yield f"{base}/{name}", "postgresql"
            finally:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await admin.close()
            return
    directory = Path(tempfile.mkdtemp(prefix="tk-bench-storm-"))
    yield f"sqlite+aiosqlite:///{directory / 'storm.db'}", "sqlite"


def bcrypt_capacity(workers: int, seconds: float) -> float:
    """Raw ``checkpw`` calls per second on ``workers`` threads, nothing else running."""
    hashed = bcrypt.hashpw(b"capacity", bcrypt.gensalt(ROUNDS))
    deadline = time.perf_counter() + seconds

    def spin() -> int:
        done = 0
        while time.perf_counter() < deadline:
            bcrypt.checkpw(b"capacity", hashed)
            done += 1
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        total = sum(pool.map(lambda _: spin(), range(workers)))
    return total / (time.perf_counter() - started)


async def probe(client: httpx.AsyncClient, token: str, stop: asyncio.Event) -> list[float]:
    """Call ``GET /auth/me`` every few ms until ``stop``; latencies in ms."""
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    while not stop.is_set():
        started = time.perf_counter()
        response = await client.get("/auth/me", headers=headers)
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
        await asyncio.sleep(PROBE_INTERVAL)
    return latencies


async def login_loop(client: httpx.AsyncClient, stop: asyncio.Event) -> int:
    """Log in again and again until ``stop``; the number of successful logins."""
    done = 0
    while not stop.is_set():
        response = await client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD})
        assert response.status_code == 200, response.text
        done += 1
    return done


async def timed_probe(client: httpx.AsyncClient, token: str, seconds: float) -> list[float]:
    stop = asyncio.Event()
    task = asyncio.create_task(probe(client, token, stop))
    await asyncio.sleep(seconds)
    stop.set()
    return await task


async def main() -> dict[str, Any]:
    seconds = float(os.environ.get("TENANTKIT_BENCH_STORM_SECONDS", "0")) or scaled(10, 2)
    async with database_url() as (url, backend):
        settings = Settings.load(
            env="test",
            jwt_secret="bench-" + "x" * 40,
            bcrypt_rounds=ROUNDS,
            database_url=url,
            data_dir=Path(tempfile.mkdtemp(prefix="tk-bench-")),
            log_level="ERROR",
            rate_limit_auth=UNLIMITED,
            rate_limit_api=UNLIMITED,
            lockout_threshold=1_000_000,
        )
        kit = TenantKit(settings, mailer=MemoryMailer(), autoload_plugins=False)
        await upgrade(kit.database)
        pool = getattr(kit.passwords._executor, "_max_workers", 4)
        workers = max(os.cpu_count() or 1, pool)
        app = kit.build_app([])
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                response = await client.post(
                    "/auth/register", json={"email": EMAIL, "password": PASSWORD, "tenant_name": "Storm"}
                )
                assert response.status_code == 201, response.text
                response = await client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD})
                assert response.status_code == 200, response.text
                token = response.json()["access_token"]

                idle = await timed_probe(client, token, max(1.0, seconds / 4))

                stop = asyncio.Event()
                logins = [asyncio.create_task(login_loop(client, stop)) for _ in range(workers)]
                await asyncio.sleep(0.3)  # let the pool fill before probing
                started = time.perf_counter()
                storm = await timed_probe(client, token, seconds)
                stop.set()
                count = sum(await asyncio.gather(*logins))
                elapsed = time.perf_counter() - started + 0.3
    capacity = await asyncio.to_thread(bcrypt_capacity, pool, max(1.0, seconds / 4))
    logins_per_s = count / elapsed
    return {
        "backend": backend,
        "bcrypt_rounds": ROUNDS,
        "login_tasks": workers,
        "bcrypt_pool": pool,
        "storm_seconds": seconds,
        "idle_p50_ms": statistics.median(idle),
        "idle_p99_ms": percentile(idle, 99),
        "storm_p50_ms": statistics.median(storm),
        "storm_p99_ms": percentile(storm, 99),
        "storm_max_ms": max(storm),
        "probes": len(storm),
        "logins": count,
        "logins_per_s": logins_per_s,
        "bcrypt_capacity_per_s": capacity,
        "capacity_ratio": logins_per_s / capacity if capacity else float("nan"),
    }


def run() -> dict[str, Any]:
    results = asyncio.run(main())
    print(
        f"GET /auth/me while {results['login_tasks']} tasks log in (bcrypt cost {ROUNDS}, "
        f"{results['backend']}, {results['storm_seconds']:g} s, {results['probes']} probes)"
    )
    line("probe p50, no logins", results["idle_p50_ms"], "ms")
    line("probe p99, no logins", results["idle_p99_ms"], "ms")
    line("probe p50, during the login storm", results["storm_p50_ms"], "ms")
    line(
        "probe p99, during the login storm",
        results["storm_p99_ms"],
        "ms",
        note=target_text("<", TARGET_P99_MS, " ms"),
    )
    line("raw bcrypt checks, same pool size", results["bcrypt_capacity_per_s"], "/s", ratio=1.0)
    line("logins through HTTP", results["logins_per_s"], "/s", ratio=results["capacity_ratio"])
    series = [
        figure("probe p50, idle", results["idle_p50_ms"], "ms"),
        figure("probe p99, idle", results["idle_p99_ms"], "ms"),
        figure("probe p50, storm", results["storm_p50_ms"], "ms"),
        figure("probe p99, storm", results["storm_p99_ms"], "ms"),
    ]
    head = headline("GET /auth/me p99 during login storm", results["storm_p99_ms"], "<", TARGET_P99_MS, "ms")
    print(f"  -> {write_result('login_storm', results, series=series, head=head)}")
    return results


if __name__ == "__main__":
    run()
