"""A worker survives Redis losing its data (FLUSHALL, a restart without persistence) and keeps running jobs.

Runs against a private redis-server this test starts, flushes and restarts:
never the shared one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from tenantkit import Settings, TenantKit
from tenantkit.admin import create_tenant
from tenantkit.context import TenantRef, tenant_context
from tests.helpers import serve
from tests.jobs.test_worker import _seen, _settings, start_worker, stop_worker
from tests.jobs.worker_app import RECORD, build_kit
from tests.services import PrivateRedis, private_redis


@pytest.fixture
def own_redis() -> AsyncIterator[PrivateRedis]:
    with private_redis() as server:
        yield server


async def eventually(probe: Any, timeout: float, explain: Any) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, explain()
        await asyncio.sleep(0.1)


async def test_the_worker_recreates_its_stream_after_redis_loses_its_data(
    pg_url: str, own_redis: PrivateRedis, tmp_path: Path
) -> None:
    log_path = tmp_path / "worker.log"

    def log() -> str:
        return log_path.read_text(errors="replace")[-4000:] if log_path.exists() else ""

    values = _settings(pg_url, {"redis_url": own_redis.url, "redis_key_prefix": "tkr:"}, tmp_path / "data")
    kit: TenantKit = build_kit(Settings.load(**values), autoload_plugins=False)
    app = kit.build_app()
    async with serve(app) as client:
        tenant = await create_tenant(kit, "Alpha")
        health = (await client.get("/health")).json()
        assert health.get("workers") == "none", health  # nobody consumes yet

        async def run_job(tenant: TenantRef) -> None:
            marker = uuid.uuid4().hex[:12]
            with tenant_context(tenant):
                await kit.jobs.enqueue(RECORD, marker)

            async def seen() -> Any:
                assert worker.returncode is None, f"the worker exited: {log()}"
                return await _seen(kit, tenant, marker)

            await eventually(seen, 30, log)

        worker = await start_worker(values, log_path)
        try:
            await run_job(tenant)

            async def workers_ok() -> bool:
                response = await client.get("/health")
                assert response.status_code == 200
                return bool(response.json()["workers"] == "ok")

            await eventually(workers_ok, 20, log)
            body = (await client.get("/health")).json()
            assert set(body) == {"status", "database", "redis", "workers"} and body["status"] == "ok"

            # FLUSHALL: the stream and its consumer group vanish under the blocked worker
            flusher = aioredis.Redis.from_url(own_redis.url)
            await flusher.flushall()
            await flusher.aclose()
            await run_job(tenant)
            await run_job(tenant)
            await eventually(workers_ok, 20, log)  # the heartbeat comes back too

            # a restart without persistence: the connection drops, the data is gone
            own_redis.stop()
            await asyncio.sleep(0.5)
            own_redis.start()
            await run_job(tenant)
        finally:
            code = await stop_worker(worker)
        assert code == 0, log()
    assert "job stream unavailable, recreating it" in log()
