"""Process-local GCRA views (``LocalGcra``) and their reconcile with Redis (``RateLimiter``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest

from tenantkit.security.ratelimit import RateLimiter
from tenantkit.settings import RateLimit
from tenantkit.stores.gcra import LocalGcra, gcra, share_of
from tenantkit.stores.memory import MemoryStore
from tenantkit.stores.redis import RedisStore

KEY = "rl:{user:u1}:api"


def test_alone_the_view_decides_exactly_like_gcra() -> None:
    local = LocalGcra(share=1.0)
    tat, now = 0.0, 1000.0
    for step in range(12):
        expected = gcra(tat, now, 10, 60)
        tat = expected[1] if expected[0] else tat
        assert local.decide(KEY, 10, 60, now) == (expected[0], expected[2], expected[3])
        now += 0.5 * (step % 3)


def test_the_share_caps_unacknowledged_events_and_a_refusal_needs_no_store() -> None:
    local = LocalGcra(share=0.05)
    assert share_of(100, 0.05) == 5 and share_of(3, 0.05) == 1
    now = 1000.0
    assert [local.decide(KEY, 100, 60, now) is not None for _ in range(6)] == [True] * 5 + [False]
    assert local.decide(KEY, 100, 60, now, capped=False) == (True, 94, 0.0)  # store down: no cap
    # The store says the budget is spent: the view refuses on its own, whatever the cap.
    (key, sent, limit, period), *_ = local.take()
    assert (key, sent) == (KEY, 6)
    local.settle(KEY, sent, now + 60.0, now)
    allowed, remaining, retry_after = local.decide(KEY, 100, 60, now) or (True, -1, -1.0)
    assert (allowed, remaining) == (False, 0) and retry_after == pytest.approx(0.6)


def test_take_settle_and_abort_keep_every_event_counted_once() -> None:
    local = LocalGcra(share=1.0)
    now = 1000.0
    for _ in range(3):
        local.decide(KEY, 60, 60, now)
    assert local.take() == [(KEY, 3, 60, 60)]
    local.decide(KEY, 60, 60, now)  # allowed while the batch is in flight
    local.abort(KEY, 3)  # the store failed: the three are unsent again
    assert local.take(busy={KEY}) == []
    assert local.take() == [(KEY, 4, 60, 60)]
    # Redis answers its ledger: 4 of ours plus 10 from elsewhere.
    assert local.settle(KEY, 4, now + 14.0, now) == now + 14.0
    assert local.decide(KEY, 60, 60, now) == (True, 45, 0.0)


def test_eviction_keeps_views_with_pending_events() -> None:
    local = LocalGcra(share=1.0, max_keys=4)
    now = 1000.0
    local.decide("pending", 10, 60, now)
    for n in range(8):
        local.decide(f"k{n}", 10, 60, now)
        local.take()
        local.settle(f"k{n}", 1, now + 6, now)
    assert "pending" in local.buckets and len(local) <= 4


@pytest.fixture(params=["redis", "cluster"])
async def redis_stores(request: pytest.FixtureRequest) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    """Two clients on one prefix: two processes' view of one Redis (or of the private Redis Cluster)."""
    if request.param == "cluster":  # the session's private cluster: a fresh prefix, no cleanup
        nodes, prefix = request.getfixturevalue("redis_cluster").nodes.split(","), f"g{uuid.uuid4().hex[:8]}:"
        a, b = RedisStore.from_cluster(nodes, prefix=prefix), RedisStore.from_cluster(nodes, prefix=prefix)
    else:
        url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
        a, b = RedisStore.from_url(url, prefix=prefix), RedisStore.from_url(url, prefix=prefix)
    yield a, b
    await a.close()
    await b.close()


async def test_reconcile_adds_counts_and_takes_one_more(redis_stores: tuple[RedisStore, RedisStore]) -> None:
    store, _ = redis_stores
    now = time.time()
    [(taken, tat)] = await store.reconcile([(KEY, 4, 10, 60, True)], now)
    assert taken and tat == pytest.approx(now + 30, abs=1e-3)  # 5 events of 6 s, sub-ms precise
    answers = await store.reconcile([(KEY, 5, 10, 60, True), ("rl:{user:u2}:api", 0, 10, 60, False)], now)
    assert answers[0] == (False, pytest.approx(now + 60, abs=1e-3))  # the ledger is full: not taken
    assert answers[1] == (False, pytest.approx(now, abs=1e-3))  # untouched key: whole budget
    # The Redis store's exact step sees the same ledger.
    assert (await store.hit(KEY, 10, 60))[0] is False


async def test_two_limiters_stay_within_limit_plus_their_shares(
    redis_stores: tuple[RedisStore, RedisStore],
) -> None:
    rate = RateLimit.parse("100/hour")  # share 5 each; replenishment negligible
    first, second = (RateLimiter(s, sync_interval=3600, local_share=0.05) for s in redis_stores)
    try:
        allowed = 0
        for _ in range(30):  # interleaved; each reconciles between rounds
            for limiter in (first, second):
                for _ in range(7):
                    allowed += (await limiter.count(KEY, rate, "api"))[0]
            await first.flush()
            await second.flush()
        assert 100 <= allowed <= 100 + 2 * 5
        # Every local decision reached Redis: the ledger holds them all.
        tat = float(await redis_stores[0].get(KEY) or 0)
        assert (tat - time.time()) / 36 == pytest.approx(allowed, abs=1)
        # Spent: both refuse with no store call left to make.
        assert not (await first.count(KEY, rate, "api"))[0]
        assert not (await second.count(KEY, rate, "api"))[0]
    finally:
        await first.close()
        await second.close()


async def test_single_limiter_on_redis_is_exact_and_memory_store_is_not_batched(
    redis_stores: tuple[RedisStore, RedisStore],
) -> None:
    limiter = RateLimiter(redis_stores[0], sync_interval=0.01, local_share=0.05)
    rate = RateLimit.parse("3/minute")
    try:
        outcomes = [await limiter.count(KEY, rate, "api") for _ in range(4)]
        assert [(ok, left) for ok, left, _ in outcomes] == [(True, 2), (True, 1), (True, 0), (False, 0)]
    finally:
        await limiter.close()
    assert RateLimiter(MemoryStore()).local is None
    assert RateLimiter(redis_stores[0], sync_interval=0).local is None


async def test_an_unreachable_store_degrades_to_local_limits() -> None:
    store = RedisStore.from_url("redis://127.0.0.1:1/0", prefix="tk-none:")
    limiter = RateLimiter(store, sync_interval=0.01, local_share=0.5)
    rate = RateLimit.parse("4/minute")
    try:
        statuses = [(await limiter.count(KEY, rate, "api"))[0] for _ in range(6)]
        assert statuses == [True] * 4 + [False] * 2
        assert limiter.degraded
    finally:
        await limiter.close()
        await store.close()
