"""Passwords: bcrypt off the loop, no silent truncation at 72 bytes, rehash, dummy checks."""

from __future__ import annotations

import asyncio
import time

import bcrypt
import pytest

from tenantkit.auth.passwords import PasswordHasher


async def test_hash_and_verify() -> None:
    hasher = PasswordHasher(4)
    hashed = await hasher.hash("correct horse")
    assert hashed.startswith("$2b$04$")
    assert await hasher.verify("correct horse", hashed)
    assert not await hasher.verify("wrong horse", hashed)


async def test_passwords_longer_than_72_bytes_are_not_truncated() -> None:
    hasher = PasswordHasher(4)
    base = "x" * 72
    hashed = await hasher.hash(base + "A")
    assert await hasher.verify(base + "A", hashed)
    assert not await hasher.verify(base + "B", hashed)  # bcrypt alone would accept this
    assert not await hasher.verify(base, hashed)
    # raw bcrypt cannot take this input at all (old versions silently truncated it)
    with pytest.raises(ValueError):
        bcrypt.hashpw((base + "A").encode(), bcrypt.gensalt(4))


async def test_multibyte_boundaries() -> None:
    hasher = PasswordHasher(4)
    emoji = "😀" * 18  # 72 bytes exactly
    longer = emoji + "é"  # crosses the limit mid-character
    hashed = await hasher.hash(longer)
    assert await hasher.verify(longer, hashed)
    assert not await hasher.verify(emoji, hashed)
    assert not await hasher.verify(emoji + "e", hashed)


async def test_nul_bytes_do_not_end_the_password() -> None:
    hasher = PasswordHasher(4)
    hashed = await hasher.hash("abc\x00def-long-enough")
    assert not await hasher.verify("abc\x00xyz-long-enough", hashed)


async def test_rehash_needed_when_cost_rises() -> None:
    low = await PasswordHasher(4).hash("pw-12345678")
    assert PasswordHasher(5).needs_rehash(low)
    assert not PasswordHasher(4).needs_rehash(low)


async def test_unknown_account_still_costs_a_bcrypt_check() -> None:
    hasher = PasswordHasher(8)
    hashed = await hasher.hash("pw-12345678")
    started = time.perf_counter()
    await hasher.verify("pw-12345678", hashed)
    real = time.perf_counter() - started
    started = time.perf_counter()
    assert not await hasher.verify("pw-12345678", None)
    await hasher.verify("pw-12345678", None)
    dummy = (time.perf_counter() - started) / 2
    assert dummy > real / 4  # same order of magnitude: no shortcut for unknown emails


async def test_hashing_does_not_block_the_event_loop() -> None:
    hasher = PasswordHasher(10)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await hasher.hash("pw-12345678")
    task.cancel()
    assert ticks >= 5


async def test_a_full_queue_refuses_with_503_and_retry_after_and_recovers() -> None:
    from tenantkit.errors import ServiceUnavailableError

    hasher = PasswordHasher(10, workers=1, queue_limit=2)
    hashed = await PasswordHasher(10).hash("pw-12345678")
    jobs = [asyncio.ensure_future(hasher.verify("pw-12345678", hashed)) for _ in range(3)]
    await asyncio.sleep(0)  # all three admitted: one running, two waiting
    assert hasher.waiting == 2
    with pytest.raises(ServiceUnavailableError) as refused:
        await hasher.verify("pw-12345678", hashed)
    assert refused.value.status == 503
    assert int(refused.value.headers["Retry-After"]) >= 1
    with pytest.raises(ServiceUnavailableError):
        await hasher.hash("pw-12345678")
    with pytest.raises(ServiceUnavailableError):
        await hasher.verify("pw-12345678", None)  # unknown emails are refused alike
    assert await asyncio.gather(*jobs) == [True, True, True]
    assert hasher.waiting == 0
    assert await hasher.verify("pw-12345678", hashed)  # room again
    hasher.close()


async def test_a_cancelled_caller_keeps_its_slot_until_the_thread_is_done() -> None:
    from tenantkit.errors import ServiceUnavailableError

    hasher = PasswordHasher(11, workers=1, queue_limit=0)
    hashed = await PasswordHasher(4).hash("pw-12345678")
    job = asyncio.ensure_future(hasher.hash("pw-12345678"))
    await asyncio.sleep(0)
    job.cancel()
    with pytest.raises(ServiceUnavailableError):  # the bcrypt thread still runs: no slot yet
        await hasher.verify("pw-12345678", hashed)
    for _ in range(200):
        if hasher.waiting == 0 and hasher._in_flight == 0:
            break
        await asyncio.sleep(0.02)
    assert await hasher.verify("pw-12345678", hashed)
    hasher.close()


async def test_the_pool_is_sized_to_the_cores_by_default() -> None:
    import os

    hasher = PasswordHasher(4)
    assert hasher.workers == (os.cpu_count() or 1)
    assert PasswordHasher(4, workers=3).workers == 3
    hasher.close()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_login_storm_gets_503_while_authenticated_requests_go_on(
    kit_factory, settings_factory
) -> None:
    """Over HTTP: a pool of 1 and a queue of 2 at cost 12; the storm queues, /auth/me does not."""
    from tenantkit.mail import MemoryMailer
    from tests.helpers import Api, assert_problem, serve

    settings = settings_factory(bcrypt_rounds=12, bcrypt_workers=1, bcrypt_queue_limit=2)
    kit = kit_factory(settings, mailer=MemoryMailer())
    async with serve(kit.build_app(), base_url="https://testserver") as client:
        api = Api(client, kit, MemoryMailer())
        await api.register("owner@example.com")
        headers = api.bearer(await api.login("owner@example.com"))
        loop = asyncio.get_running_loop()
        finished: dict[int, float] = {}

        async def login(i: int) -> object:
            response = await client.post(
                "/auth/login", json={"email": f"nobody{i}@example.com", "password": "wrong password 1"}
            )
            finished[i] = loop.time()
            return response

        storm = [asyncio.ensure_future(login(i)) for i in range(12)]
        while not any(task.done() for task in storm):  # the first refusals mean the queue is full
            await asyncio.sleep(0.001)
        me = await client.get("/auth/me", headers=headers)
        me_done = loop.time()
        responses = await asyncio.gather(*storm)

    assert me.status_code == 200, me.text
    statuses = [r.status_code for r in responses]  # type: ignore[attr-defined]
    assert set(statuses) <= {401, 503}, statuses
    assert statuses.count(503) >= 12 - 3, statuses  # at most one running and two waiting
    assert statuses.count(401) >= 1, statuses
    for response in responses:
        if response.status_code == 503:  # type: ignore[attr-defined]
            assert_problem(response, 503)  # type: ignore[arg-type]
            assert int(response.headers["Retry-After"]) >= 1  # type: ignore[attr-defined]
    checked = [finished[i] for i, status in enumerate(statuses) if status == 401]
    assert me_done < max(checked)  # answered while the admitted logins were still hashing
