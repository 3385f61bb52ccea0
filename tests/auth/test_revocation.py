"""Instant revocation across instances, and failing closed when the store is down."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tenantkit import Settings, TenantKit
from tenantkit.mail import MemoryMailer
from tests.auth.conftest import Api
from tests.conftest import SECRET
from tests.helpers import assert_problem, eventually, serve
from tests.services import private_redis


async def test_logout_on_one_instance_is_refused_on_another(
    two_instances: tuple[Api, httpx.AsyncClient],
) -> None:
    api, b = two_instances
    a = api.client
    await api.register("two@example.com")
    tokens = await api.login("two@example.com")
    headers = api.bearer(tokens)
    assert (await b.get("/auth/me", headers=headers)).status_code == 200  # B caches "not revoked"
    assert (await b.get("/auth/me", headers=headers)).status_code == 200
    assert (await a.post("/auth/logout", headers=headers)).status_code == 204
    assert_problem(await eventually(lambda: b.get("/auth/me", headers=headers), 401), 401)


@pytest.mark.slow
async def test_revocation_check_fails_closed_while_redis_is_down(tmp_path: Path, sqlite_url: str) -> None:
    with private_redis() as server:
        settings = Settings.load(
            env="test",
            jwt_secret=SECRET,
            bcrypt_rounds=4,
            database_url=sqlite_url,
            redis_url=server.url,
            data_dir=tmp_path,
        )
        kit = TenantKit(settings, mailer=MemoryMailer())
        async with serve(kit.build_app(), base_url="https://testserver") as client:
            api = Api(client, kit, MemoryMailer())
            await api.register("down@example.com")
            tokens = await api.login("down@example.com")
            headers = api.bearer(tokens)
            assert (await client.get("/auth/me", headers=headers)).status_code == 200
            server.stop()
            for _ in range(100):
                if not kit.revocations.cache.live:
                    break
                await asyncio.sleep(0.05)
            # the cached "not revoked" answer must not be trusted while invalidations may be missed
            response = await client.get("/auth/me", headers=headers)
            assert response.status_code in (401, 503)
            assert response.headers["content-type"].startswith("application/problem+json")
            logout = await client.post("/auth/logout", headers=headers)
            assert logout.status_code in (401, 503)  # never a silent 204
            server.start()
            for _ in range(100):
                if kit.revocations.cache.live:
                    break
                await asyncio.sleep(0.1)
            assert (await client.get("/auth/me", headers=headers)).status_code == 200
            assert (await client.post("/auth/logout", headers=headers)).status_code == 204
            assert_problem(await client.get("/auth/me", headers=headers), 401)
