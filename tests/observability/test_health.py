from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from tenantkit import Settings, TenantKit
from tests.conftest import SECRET
from tests.helpers import assert_problem, serve
from tests.services import private_postgres, private_redis


async def test_health_reports_every_part(kit_factory: Callable[..., TenantKit], backend: str) -> None:
    async with serve(kit_factory().build_app()) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    expected_store = "connected" if backend == "postgres" else "in-memory"
    # with Redis no worker runs in this test: said, but the API itself is healthy (200)
    expected_workers = "none" if backend == "postgres" else "in-process"
    assert response.json() == {
        "status": "ok",
        "database": "connected",
        "redis": expected_store,
        "workers": expected_workers,
    }


@pytest.mark.slow
async def test_health_is_503_naming_postgres_while_it_is_down_and_recovers(tmp_path: Path) -> None:
    with private_postgres() as server:
        settings = Settings.load(env="test", jwt_secret=SECRET, database_url=server.url, data_dir=tmp_path)
        kit = TenantKit(settings)
        async with serve(kit.build_app()) as client:
            assert (await client.get("/health")).status_code == 200
            await asyncio.to_thread(server.stop)
            down = await client.get("/health")
            body = assert_problem(down, 503)
            assert body["database"] == "unavailable"
            assert body["redis"] == "in-memory"
            assert "database" in str(body["detail"])
            await asyncio.to_thread(server.start)
            assert (await client.get("/health")).status_code == 200


@pytest.mark.slow
async def test_health_is_503_naming_redis_while_it_is_down_and_recovers(
    tmp_path: Path, sqlite_url: str
) -> None:
    with private_redis() as server:
        settings = Settings.load(
            env="test", jwt_secret=SECRET, database_url=sqlite_url, redis_url=server.url, data_dir=tmp_path
        )
        kit = TenantKit(settings)
        async with serve(kit.build_app()) as client:
            assert (await client.get("/health")).json()["redis"] == "connected"
            server.stop()
            body = assert_problem(await client.get("/health"), 503)
            assert body["redis"] == "unavailable"
            assert body["database"] == "connected"
            server.start()
            assert (await client.get("/health")).status_code == 200
