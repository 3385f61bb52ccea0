"""Rate limits decided in process, across two server processes sharing one Redis.

The documented bound (docs/concepts/security.md): with P processes, each
allowed a share S = max(1, ⌊share·limit⌋), at most ``limit + rate·d + P·S`` events
pass in an interval of length d; and once the budget is spent, another process
allows at most S more and refuses from its next reconcile on (T + one round trip).
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from tests.conftest import SECRET, free_port
from tests.helpers import assert_problem

pytestmark = pytest.mark.slow

LIMIT, PERIOD, SHARE, SYNC_MS, PROCESSES = 200, 3600, 0.05, 100, 2
S = max(1, math.floor(LIMIT * SHARE))  # 10
RATE = LIMIT / PERIOD


@pytest.fixture
def servers(sqlite_url: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> Iterator[list[str]]:
    """Two uvicorn processes on loopback, one Redis prefix; the client address comes from X-Forwarded-For."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), *sys.path]),
        "TENANTKIT_ENV": "test",
        "TENANTKIT_JWT_SECRET": SECRET,
        "TENANTKIT_DATABASE_URL": sqlite_url,
        "TENANTKIT_REDIS_URL": redis_url,
        "TENANTKIT_REDIS_KEY_PREFIX": redis_prefix,
        "TENANTKIT_DATA_DIR": str(tmp_path),
        "TENANTKIT_LOG_LEVEL": "WARNING",
        "TENANTKIT_TRUSTED_PROXIES": "127.0.0.1/32",
        "TENANTKIT_RATE_LIMIT_API": f"{LIMIT}/hour",
        "TENANTKIT_RATE_LIMIT_SYNC_MS": str(SYNC_MS),
        "TENANTKIT_RATE_LIMIT_LOCAL_SHARE": str(SHARE),
    }
    script = Path(__file__).with_name("rate_limit_server.py")
    ports = [free_port() for _ in range(PROCESSES)]
    procs = [subprocess.Popen([sys.executable, str(script), str(port)], env=env) for port in ports]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        deadline = time.monotonic() + 60
        for url in urls:
            while True:
                try:
                    if httpx.get(url + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "rate_limit_server did not start"
                time.sleep(0.2)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)


async def _ledger(redis_url: str, key: str) -> float:
    """Events in the shared ledger now (the GCRA TAT ahead of now, in emission intervals)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        tat = float(await client.get(key) or 0)
    finally:
        await client.aclose()
    return max(0.0, tat - time.time()) / (PERIOD / LIMIT)


async def test_hammering_one_budget_from_two_processes_stays_within_the_bound(
    servers: list[str], redis_url: str, redis_prefix: str
) -> None:
    headers = {"X-Forwarded-For": "192.0.2.10"}
    statuses: list[int] = []
    refused: list[httpx.Response] = []

    async def hammer(client: httpx.AsyncClient, count: int) -> None:
        for _ in range(count):
            response = await client.get("/ping", headers=headers)
            statuses.append(response.status_code)
            if response.status_code == 429 and not refused:
                refused.append(response)

    clients = [httpx.AsyncClient(base_url=url, timeout=30) for url in servers]
    started = time.monotonic()
    try:
        await asyncio.gather(*(hammer(client, 60) for client in clients for _ in range(5)))
    finally:
        for client in clients:
            await client.aclose()
    elapsed = time.monotonic() - started
    allowed = statuses.count(200)
    assert set(statuses) == {200, 429}
    bound = LIMIT + RATE * elapsed + PROCESSES * S
    assert LIMIT <= allowed <= bound, (allowed, bound)
    assert_problem(refused[0], 429)
    assert refused[0].headers["retry-after"].isdigit()
    assert '"api";q=200;w=3600' in refused[0].headers["ratelimit-policy"]
    # Every local decision reached Redis within a reconcile: the ledger holds them all.
    await asyncio.sleep(5 * SYNC_MS / 1000)
    ledger = await _ledger(redis_url, redis_prefix + "rl:{ip:192.0.2.10}:api")
    assert ledger == pytest.approx(allowed - RATE * (time.monotonic() - started), abs=1.5)


async def test_a_budget_spent_in_one_process_is_enforced_by_the_other(
    servers: list[str], redis_url: str, redis_prefix: str
) -> None:
    headers = {"X-Forwarded-For": "192.0.2.20"}
    key = redis_prefix + "rl:{ip:192.0.2.20}:api"
    async with (
        httpx.AsyncClient(base_url=servers[0], headers=headers) as a,
        httpx.AsyncClient(base_url=servers[1], headers=headers) as b,
    ):
        assert (await b.get("/ping")).status_code == 200  # B now holds a view with room
        await asyncio.sleep(3 * SYNC_MS / 1000)
        # Alone, A is exact: it allows what is left, then refuses.
        statuses = [(await a.get("/ping")).status_code for _ in range(LIMIT + 5)]
        assert statuses.count(200) == LIMIT - 1 and statuses[LIMIT - 1 :] == [429] * 6
        deadline = time.monotonic() + 10
        while await _ledger(redis_url, key) < LIMIT - 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        spent_at = time.monotonic()
        # B's view is stale: it may allow at most its share, then learns the truth.
        answers = []
        while time.monotonic() - spent_at < SYNC_MS / 1000 + 1.0:
            response = await b.get("/ping")
            answers.append((time.monotonic() - spent_at, response.status_code))
        assert len([s for _, s in answers if s == 200]) <= S
        late = [s for t, s in answers if t > SYNC_MS / 1000 + 0.5]
        assert late and set(late) == {429}
