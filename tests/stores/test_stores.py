"""One suite, run against the in-memory store and against Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tenantkit.stores import MemoryStore, Store


@pytest.fixture(params=["memory", "redis", "cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    from tenantkit.stores.redis import RedisStore

    if request.param == "cluster":  # a private cluster: keys need no cleanup
        cluster = request.getfixturevalue("redis_cluster")
        cluster_store = RedisStore.from_cluster(cluster.nodes.split(","), prefix=f"t{uuid.uuid4().hex[:8]}:")
        yield cluster_store
        await cluster_store.close()
        return

    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    redis_store = RedisStore.from_url(url, prefix=prefix)
    yield redis_store
    await redis_store.close()


async def test_set_get_delete(store: Store) -> None:
    assert await store.get("a") is None
    assert await store.set("a", b"1")
    assert await store.get("a") == b"1"
    assert await store.delete("a", "missing") == 1
    assert await store.get("a") is None


async def test_ttl_expires(store: Store) -> None:
    await store.set("short", b"x", ttl=0.2)
    remaining = await store.ttl("short")
    assert remaining is not None and 0 < remaining <= 0.2
    await asyncio.sleep(0.3)
    assert await store.get("short") is None
    assert await store.ttl("short") is None


async def test_only_if_absent(store: Store) -> None:
    assert await store.set("k", b"first", only_if_absent=True)
    assert not await store.set("k", b"second", only_if_absent=True)
    assert await store.get("k") == b"first"


async def test_incr_is_atomic_and_keeps_first_ttl(store: Store) -> None:
    results = await asyncio.gather(*(store.incr("count", ttl=30) for _ in range(50)))
    assert sorted(results) == list(range(1, 51))
    ttl = await store.ttl("count")
    assert ttl is not None and 0 < ttl <= 30


async def test_hit_allows_exactly_the_limit_then_gives_retry_after(store: Store) -> None:
    outcomes = [await store.hit("rl", 5, 60) for _ in range(7)]
    allowed = [ok for ok, _, _ in outcomes]
    assert allowed == [True] * 5 + [False] * 2
    assert outcomes[0][1] == 4
    assert outcomes[4][1] == 0
    retry_after = outcomes[5][2]
    assert 0 < retry_after <= 12.5


async def test_publish_reaches_subscribers(store: Store) -> None:
    received: list[bytes] = []
    done = asyncio.Event()

    async def handler(message: bytes) -> None:
        received.append(message)
        done.set()

    subscription = await store.subscribe("events", handler)
    await store.publish("events", b"hello")
    await asyncio.wait_for(done.wait(), 5)
    assert received == [b"hello"]
    await subscription.close()


async def test_redis_keys_carry_the_prefix(redis_url: str, redis_prefix: str) -> None:
    import redis.asyncio as aioredis

    from tenantkit.stores.redis import RedisStore

    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    await store.set("visible", b"1")
    raw = aioredis.Redis.from_url(redis_url)
    assert await raw.get(redis_prefix + "visible") == b"1"
    await raw.aclose()
    await store.close()


async def test_cluster_spreads_keys_and_sharded_channels_over_masters(redis_cluster: Any) -> None:
    """On a cluster, keys of different users land on different masters, and each works."""
    from redis.asyncio.cluster import RedisCluster

    from tenantkit.stores.redis import RedisStore

    store = RedisStore.from_cluster(redis_cluster.nodes.split(","), prefix="spread:")
    raw = RedisCluster.from_url(f"redis://{redis_cluster.nodes.split(',')[0]}")
    await raw.initialize()
    try:
        keys = [f"u:{{user-{n}}}:attempts" for n in range(30)]
        for key in keys:
            assert await store.incr(key, ttl=30) == 1
            assert (await store.hit(f"rl:{key}", 2, 60))[0]
        owners = {raw.get_node_from_key("spread:" + key).name for key in keys}
        assert len(owners) == 3  # every master holds some
        assert await store.delete(*keys) == 30  # a multi-key delete across slots

        received: dict[str, asyncio.Event] = {}
        channels = [f"chan-{n}" for n in range(6)]
        subscriptions = []
        for channel in channels:
            received[channel] = asyncio.Event()
            subscriptions.append(
                await store.subscribe(channel, lambda _m, event=received[channel]: event.set())
            )
        assert len({raw.get_node_from_key("spread:" + c).name for c in channels}) > 1
        for channel in channels:
            await store.publish(channel, b"x")
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in received.values())), 5)
        for subscription in subscriptions:
            await subscription.close()
    finally:
        await raw.aclose()
        await store.close()
