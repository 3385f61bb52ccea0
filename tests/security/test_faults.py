"""Outages: the database answers 503 and recovers; rate limiting fails open while Redis is down."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tenantkit import Settings, TenantKit
from tenantkit.db.migrate import upgrade
from tests.conftest import SECRET
from tests.helpers import assert_problem, eventually, serve
from tests.security.conftest import register_and_login
from tests.services import private_postgres, private_redis

pytestmark = pytest.mark.slow


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def kit_on(database_url: str, data_dir: Path) -> TenantKit:
    """A kit on a private PostgreSQL server, migrated."""
    settings = Settings.load(
        env="test",
        jwt_secret=SECRET,
        database_url=database_url,
        data_dir=data_dir,
        bcrypt_rounds=4,
        log_level="WARNING",
        db_pool_timeout=2,
    )
    kit = TenantKit(settings)
    await upgrade(kit.database)
    return kit


async def ping(request: Request) -> Response:
    return JSONResponse({"pong": True})


async def test_database_outage_is_503_and_recovers_without_a_new_kit(tmp_path: Path) -> None:
    with private_postgres() as server:
        kit = await kit_on(server.url, tmp_path)
        async with serve(kit.build_app()) as client:
            bearer = await register_and_login(client, "alice@example.com")
            assert (await client.get("/auth/sessions", headers=bearer)).status_code == 200
            await asyncio.to_thread(server.stop)
            down = await client.get("/auth/sessions", headers=bearer)
            body = assert_problem(down, 503)
            assert down.headers["retry-after"].isdigit()
            assert "x-request-id" in down.headers
            assert "asyncpg" not in str(body) and "Traceback" not in down.text
            await asyncio.to_thread(server.start)
            up = await eventually(lambda: client.get("/auth/sessions", headers=bearer), 200, timeout=10)
            assert up.status_code == 200
            assert len(up.json()["items"]) == 1


async def test_refresh_during_a_database_outage_is_503_and_spends_nothing(tmp_path: Path) -> None:
    with private_postgres() as server:
        kit = await kit_on(server.url, tmp_path)
        async with serve(kit.build_app()) as client:
            await register_and_login(client, "bob@example.com")
            login = await client.post(
                "/auth/login", json={"email": "bob@example.com", "password": "correct horse battery"}
            )
            token = login.json()["refresh_token"]
            first = await client.post("/auth/refresh", json={"refresh_token": token})
            token = first.json()["refresh_token"]  # a warm pooled connection now exists
            await asyncio.to_thread(server.stop)
            down = await client.post("/auth/refresh", json={"refresh_token": token})
            body = assert_problem(down, 503)
            assert "asyncpg" not in str(body)
            await asyncio.to_thread(server.start)
            up = await eventually(
                lambda: client.post("/auth/refresh", json={"refresh_token": token}), 200, timeout=10
            )
            # the token the outage interrupted was not spent: it rotates normally afterwards
            assert up.json()["refresh_token"] != token


async def test_rate_limiting_fails_open_to_process_limits_while_redis_is_down(
    tmp_path: Path, sqlite_url: str
) -> None:
    records = Records()
    security_log = logging.getLogger("tenantkit.security")
    with private_redis() as server:
        settings = Settings.load(
            env="test",
            jwt_secret=SECRET,
            database_url=sqlite_url,
            redis_url=server.url,
            data_dir=tmp_path,
            log_level="WARNING",
            rate_limit_api="3/minute",
        )
        kit = TenantKit(settings)
        async with serve(kit.build_app([Route("/ping", ping)])) as client:
            security_log.addHandler(records)
            try:
                for remaining in (2, 1):
                    response = await client.get("/ping")
                    assert response.status_code == 200
                    assert f'"api";r={remaining};' in response.headers["ratelimit"]
                assert not kit.rate_limiter.degraded

                server.stop()
                # In-process limits take over from what this process knew (the last of
                # the three), still enforced, never a 500; the background reconcile
                # notices the outage.
                statuses = [(await client.get("/ping")).status_code for _ in range(5)]
                assert statuses == [200, 429, 429, 429, 429]
                deadline = time.monotonic() + 5
                while not kit.rate_limiter.degraded and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                assert kit.rate_limiter.degraded
                assert len([m for m in records.messages if "unavailable" in m]) == 1

                server.start()
                kit.rate_limiter.retry_interval = 0.0
                deadline = time.monotonic() + 10
                while kit.rate_limiter.degraded and time.monotonic() < deadline:
                    await client.get("/ping")
                    await asyncio.sleep(0.05)
                assert not kit.rate_limiter.degraded
                assert len([m for m in records.messages if "recovered" in m]) == 1
                # Back on Redis, whose budget (fresh after the restart) is shared again.
                response = await client.get("/ping")
                assert response.status_code == 200
                assert '"api";r=' in response.headers["ratelimit"]
            finally:
                security_log.removeHandler(records)
