"""The lockout policy: one address cannot keep an account locked against its owner (ASVS 5.0 §6.1.1, §6.3.1)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from tenantkit import MemoryStore, Settings, TenantKit
from tenantkit.auth.lockout import Lockout
from tenantkit.errors import AccountLockedError
from tenantkit.mail import MemoryMailer
from tests.conftest import ON_CLUSTER
from tests.helpers import Api, assert_problem

ATTACKER = "198.51.100.66"
OWNER = "203.0.113.10"
PASSWORD = "correct horse battery"


@contextlib.asynccontextmanager
async def clients(kit: TenantKit) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """The attacker's and the owner's clients, from two addresses, on one served app."""
    app = kit.build_app()
    async with app.router.lifespan_context(app), contextlib.AsyncExitStack() as stack:
        made = []
        for address in (ATTACKER, OWNER):
            transport = httpx.ASGITransport(app=app, client=(address, 50000))
            client = httpx.AsyncClient(transport=transport, base_url="https://testserver")
            made.append(await stack.enter_async_context(client))
        yield made[0], made[1]


@pytest.fixture
async def locked_out(
    kit_factory: Callable[..., TenantKit], settings_factory: Callable[..., Settings]
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, float]]:
    """An account the attacker has just locked (1 s locks); yields both clients and when the lock began."""
    kit = kit_factory(settings_factory(lockout_seconds=1), mailer=MemoryMailer())
    async with clients(kit) as (attacker, owner):
        await Api(owner, kit, MemoryMailer()).register("owner@example.com", PASSWORD)
        for _ in range(5):
            wrong = await attacker.post(
                "/auth/login", json={"email": "owner@example.com", "password": "guess"}
            )
            assert wrong.status_code == 401
        locked_at = time.monotonic()
        yield attacker, owner, locked_at


async def login(client: httpx.AsyncClient, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/auth/login", json={"email": "owner@example.com", "password": password})


@ON_CLUSTER
async def test_failures_during_the_lock_do_not_extend_it(
    locked_out: tuple[httpx.AsyncClient, httpx.AsyncClient, float],
) -> None:
    attacker, owner, locked_at = locked_out
    assert_problem(await login(owner), 423)
    while time.monotonic() < locked_at + 0.9:  # the attacker keeps trying during the whole lock
        assert_problem(await login(attacker, "guess-again"), 423)
        await asyncio.sleep(0.05)
    await asyncio.sleep(max(0.0, locked_at + 1.05 - time.monotonic()))
    assert (await login(owner)).status_code == 200  # at once when the lock ends


async def test_an_address_that_locked_an_account_cannot_lock_it_again(
    locked_out: tuple[httpx.AsyncClient, httpx.AsyncClient, float],
) -> None:
    attacker, owner, locked_at = locked_out
    await asyncio.sleep(max(0.0, locked_at + 1.05 - time.monotonic()))
    for _ in range(5):
        assert (await login(attacker, "guess")).status_code == 401
    refused = await login(attacker, PASSWORD)  # even the right password: this address is held
    assert_problem(refused, 423)
    assert refused.headers["retry-after"] == "2"  # backoff: twice the lock
    assert (await login(owner)).status_code == 200  # the account itself stays open
    for _ in range(3):
        assert_problem(await login(attacker, "guess"), 423)
    assert (await login(owner)).status_code == 200


async def test_the_owner_recovers_by_password_reset_during_the_lock(
    kit_factory: Callable[..., TenantKit], settings_factory: Callable[..., Settings]
) -> None:
    mailer = MemoryMailer()
    kit = kit_factory(settings_factory(), mailer=mailer)  # 15-minute locks
    async with clients(kit) as (attacker, owner):
        await Api(owner, kit, mailer).register("owner@example.com", PASSWORD)
        for _ in range(6):
            await login(attacker, "guess")
        assert_problem(await login(owner), 423)
        assert (
            await owner.post("/auth/password-reset", json={"email": "owner@example.com"})
        ).status_code == 202
        async with asyncio.timeout(5):
            while not mailer.outbox:
                await asyncio.sleep(0.02)
        token = next(word for word in mailer.outbox[-1].body.split() if word.startswith("tkp_"))
        confirm = {"token": token, "new_password": "a brand new pass"}
        assert (await owner.post("/auth/password-reset/confirm", json=confirm)).status_code == 204
        assert (await login(owner, "a brand new pass")).status_code == 200
        for _ in range(6):  # the attacker's address stays struck: its failures hold only itself
            await login(attacker, "guess")
        assert (await login(owner, "a brand new pass")).status_code == 200


async def test_backoff_doubles_and_is_capped() -> None:
    lockout = Lockout(MemoryStore(), threshold=5, seconds=60, max_seconds=600)
    assert [lockout.backoff(n) for n in (1, 2, 3, 4, 10, 1000)] == [120, 240, 480, 600, 600, 600]


async def test_a_struck_address_is_locked_alone_through_the_python_api() -> None:
    lockout = Lockout(MemoryStore(), threshold=2, seconds=60)
    for _ in range(2):
        attempt = await lockout.begin("a@example.com", ip="192.0.2.1")
        locked = await lockout.failed("a@example.com", attempt)
    assert locked
    await lockout.clear("a@example.com", ip="192.0.2.99")  # the owner resets from elsewhere
    for _ in range(2):
        attempt = await lockout.begin("a@example.com", ip="192.0.2.1")
        assert not await lockout.failed("a@example.com", attempt)  # counts against the address only
    with pytest.raises(AccountLockedError):
        await lockout.begin("a@example.com", ip="192.0.2.1")
    attempt = await lockout.begin("a@example.com", ip="192.0.2.99")
    await lockout.succeeded("a@example.com", ip="192.0.2.99")
