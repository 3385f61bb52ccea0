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
