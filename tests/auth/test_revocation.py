"""Revocation: the database is the truth; stores and process caches only cache it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tenantkit import MemoryStore, Settings, TenantKit
from tenantkit.auth.revocation import RevocationList
from tenantkit.db.base import utcnow
from tenantkit.db.engine import Database
from tenantkit.db.migrate import upgrade
from tenantkit.db.models import AuthSession
from tenantkit.mail import MemoryMailer
from tests.auth.conftest import Api
from tests.conftest import ON_CLUSTER, SECRET
from tests.helpers import assert_problem, eventually, serve
from tests.services import private_postgres, private_redis


async def whoami(request: Request) -> Response:
    """Who the token says: no database read, so only the revocation check can touch I/O."""
    principal = request.state.principal
    return JSONResponse({"session": str(principal.session_id) if principal else None})


ROUTES = [Route("/whoami", whoami, methods=["GET"])]


def settings_on(database_url: str, data_dir: Path, **values: object) -> Settings:
    return Settings.load(
        env="test",
        jwt_secret=SECRET,
        bcrypt_rounds=4,
        database_url=database_url,
        data_dir=data_dir,
        log_level="WARNING",
        rate_limit_auth="10000/minute",
        db_pool_timeout=2,
        **values,
    )


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


Served = Callable[[TenantKit], Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    """Serve kits (with ``/whoami``) until the end of the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(kit: TenantKit) -> httpx.AsyncClient:
            app = kit.build_app(ROUTES)
            return await stack.enter_async_context(serve(app, base_url="https://testserver"))

        yield start


@ON_CLUSTER
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


async def test_a_logged_out_session_stays_dead_in_a_new_process_with_an_empty_store(
    kit_factory: Callable[..., TenantKit], settings_factory: Callable[..., Settings], served: Served
) -> None:
    settings = settings_factory()
    kit = kit_factory(settings, mailer=MemoryMailer())
    a = await served(kit)
    api = Api(a, kit, MemoryMailer())
    await api.register("cold@example.com")
    dead = api.bearer(await api.login("cold@example.com"))
    alive = api.bearer(await api.login("cold@example.com"))
    assert (await a.post("/auth/logout", headers=dead)).status_code == 204

    # same database, nothing in the store (a fresh prefix / memory): a restart after Redis lost its data
    cold = settings_factory(redis_key_prefix=settings.redis_key_prefix + "cold:")
    b = await served(kit_factory(cold, mailer=MemoryMailer()))
    assert_problem(await b.get("/whoami", headers=dead), 401)
    assert_problem(await b.get("/auth/me", headers=dead), 401)
    assert (await b.get("/whoami", headers=alive)).status_code == 200


async def test_an_unknown_or_malformed_session_id_is_revoked(database: Database) -> None:
    revocations = RevocationList(MemoryStore(), database, mark_ttl=60)
    await revocations.start()
    try:
        assert await revocations.is_revoked(uuid.uuid4())
        assert await revocations.is_revoked("not-a-uuid")
    finally:
        await revocations.stop()


@pytest.mark.slow
async def test_a_logged_out_session_stays_dead_when_redis_loses_its_data(
    tmp_path: Path, pg_url: str, served: Served
) -> None:
    import redis.asyncio as aioredis

    with private_redis() as server:
        settings = settings_on(pg_url, tmp_path, redis_url=server.url)
        kit = TenantKit(settings, mailer=MemoryMailer())
        try:
            client = await served(kit)
            api = Api(client, kit, MemoryMailer())
            await api.register("flush@example.com")
            headers = api.bearer(await api.login("flush@example.com"))
            assert (await client.get("/whoami", headers=headers)).status_code == 200
            assert (await client.post("/auth/logout", headers=headers)).status_code == 204

            redis = aioredis.Redis.from_url(server.url)
            await redis.flushall()  # a private server: the shared one is never flushed
            await redis.aclose()
            fresh = TenantKit(settings, mailer=MemoryMailer())
            try:
                assert_problem(await (await served(fresh)).get("/whoami", headers=headers), 401)
            finally:
                await fresh.shutdown()

            # a Redis restart without persistence: the channel drops, the data is gone
            await asyncio.to_thread(server.stop)
            await wait_for(lambda: not kit.revocations.live)
            await asyncio.to_thread(server.start)
            await wait_for(lambda: kit.revocations.live)
            assert_problem(await client.get("/whoami", headers=headers), 401)
        finally:
            await kit.shutdown()


@pytest.mark.slow
async def test_cold_cache_and_database_down_fails_closed(tmp_path: Path, served: Served) -> None:
    with private_postgres() as server:
        settings = settings_on(server.url, tmp_path)
        a_kit = TenantKit(settings, mailer=MemoryMailer())
        await upgrade(a_kit.database)
        try:
            a = await served(a_kit)
            api = Api(a, a_kit, MemoryMailer())
            await api.register("down@example.com")
            revoked = api.bearer(await api.login("down@example.com"))
            seen = api.bearer(await api.login("down@example.com"))
            unseen = api.bearer(await api.login("down@example.com"))
            assert (await a.post("/auth/logout", headers=revoked)).status_code == 204

            # another process, its own (empty) store: it warms from the database at start
            b_kit = TenantKit(settings, mailer=MemoryMailer())
            try:
                b = await served(b_kit)
                assert (await b.get("/whoami", headers=seen)).status_code == 200
                await asyncio.to_thread(server.stop)

                assert_problem(await b.get("/whoami", headers=revoked), 401)  # from the warm-up
                assert (await b.get("/whoami", headers=seen)).status_code == 200  # cached: no I/O
                down = await b.get("/whoami", headers=unseen)
                assert_problem(down, 503)
                assert down.headers["retry-after"].isdigit()
                await asyncio.to_thread(server.start)
                up = await eventually(lambda: b.get("/whoami", headers=unseen), 200, timeout=10)
                assert up.status_code == 200
            finally:
                await b_kit.shutdown()
        finally:
            await a_kit.shutdown()


@pytest.mark.slow
async def test_while_redis_is_down_the_database_answers_within_the_documented_bound(
    tmp_path: Path, sqlite_url: str, served: Served
) -> None:
    with private_redis() as server:
        kit = TenantKit(settings_on(sqlite_url, tmp_path, redis_url=server.url), mailer=MemoryMailer())
        try:
            client = await served(kit)
            api = Api(client, kit, MemoryMailer())
            await api.register("bound@example.com")
            tokens = await api.login("bound@example.com")
            headers = api.bearer(tokens)
            assert (await client.get("/whoami", headers=headers)).status_code == 200
            kit.revocations.degraded_ttl = 0.5
            await asyncio.to_thread(server.stop)
            await wait_for(lambda: not kit.revocations.live)

            # the database answers while the channel is down; a logout cannot be recorded everywhere
            assert (await client.get("/whoami", headers=headers)).status_code == 200
            assert_problem(await client.post("/auth/logout", headers=headers), 503)  # never a silent 204

            # another process ended the session; its message could not reach this one
            async with kit.database.session() as session, session.begin():
                await session.execute(update(AuthSession).values(revoked_at=utcnow()))
            assert_problem(await eventually(lambda: client.get("/whoami", headers=headers), 401), 401)
        finally:
            await kit.shutdown()
