"""Redis store (``redis.asyncio``); needs ``tenantkit[redis]``."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Sequence
from typing import Any

from tenantkit.errors import MissingDependencyError
from tenantkit.stores.base import MessageHandler, StateHandler

try:
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import ClusterNode, RedisCluster
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("redis", "RedisStore") from exc

__all__ = ["RedisStore", "cluster_client"]

logger = logging.getLogger("tenantkit.stores")

# KEYS[1]=key ARGV: now, limit, period. Returns {allowed, remaining, retry_after*1000}.
_GCRA = """
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local interval = period / limit
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - period
if allow_at > now then
  return {0, 0, math.ceil((allow_at - now) * 1000)}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.max(1, math.ceil((new_tat - now) * 1000)))
return {1, math.floor((period - (new_tat - now)) / interval + 1e-9), 0}
"""

# KEYS[1]=key ARGV: now, limit, period, count, take. Adds ``count`` events allowed
# elsewhere (unconditionally: the ledger stays honest), then with take=1 tries one
# more GCRA step. Returns {taken, tat - now} (a string: Lua numbers would be
# truncated to integers in the reply; relative, because tostring keeps 14 digits).
_RECONCILE = """
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local count = tonumber(ARGV[4])
local interval = period / limit
if tat < now then tat = now end
tat = tat + count * interval
local taken = 0
if ARGV[5] == '1' and tat + interval - period <= now then
  tat = tat + interval
  taken = 1
end
if tat > now then
  redis.call('SET', KEYS[1], tostring(tat), 'PX', math.max(1, math.ceil((tat - now) * 1000)))
end
return {taken, string.format('%.6f', tat - now)}
"""

_INCR = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""


class _Cluster(RedisCluster):
    """``RedisCluster`` that learns the topology before routing any command.

    redis-py 8.1 routes a command against the startup node while another
    coroutine's first command is (re)initializing the client, whose
    connections that initialization closes: concurrent first commands then
    fail with ``'NoneType' object has no attribute 'writelines'``. Waiting
    for the (locked) initialization first closes that race, also after a
    failover makes the client reinitialize.
    """

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self._initialize:
            await self.initialize()
        return await super().execute_command(*args, **kwargs)

    async def refresh(self) -> None:
        """Reload the slot map (after a failover), the way a failed command makes redis-py do it."""
        self._initialize = True
        await self.initialize()


def cluster_client(nodes: list[str], **options: Any) -> RedisCluster:
    """A lazy client of the Redis Cluster that any of ``nodes`` (``host:port``) belongs to.

    Short timeouts (overridable in ``options``) make an outage surface fast.
    """
    options.setdefault("socket_timeout", 2.0)
    options.setdefault("socket_connect_timeout", 2.0)
    startup = [ClusterNode(host, int(port)) for host, _, port in (node.rpartition(":") for node in nodes)]
    return _Cluster(startup_nodes=startup, **options)


class _RedisSubscription:
    def __init__(self, task: asyncio.Task[None]) -> None:
        self._task = task

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, RedisError):
            await self._task


class RedisStore:
    """A ``Store`` on Redis or a Redis Cluster; every key gets ``prefix``.

    On a cluster every command touches one key (or keys sharing a ``{hash
    tag}``, which ``delete`` splits by slot anyway), the Lua scripts read and
    write only their ``KEYS[1]``, and pub/sub is *sharded* (``SPUBLISH`` /
    ``SSUBSCRIBE``): a channel lives on the master owning its slot instead of
    being broadcast to every node.

    Args:
        client: A ``redis.asyncio.Redis`` or ``redis.asyncio.RedisCluster`` client.
        prefix: Prepended to every key and channel (keep tests and apps apart).
    """

    name = "redis"

    def __init__(self, client: aioredis.Redis | RedisCluster, *, prefix: str = "tk:") -> None:
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        self._prefix = prefix
        self._gcra = client.register_script(_GCRA)
        self._incr = client.register_script(_INCR)
        self._reconcile = client.register_script(_RECONCILE)
        self._subscriptions: list[_RedisSubscription] = []

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "tk:", **options: Any) -> RedisStore:
        """Connect lazily to ``url`` with short timeouts so outages surface fast."""
        options.setdefault("socket_timeout", 2.0)
        options.setdefault("socket_connect_timeout", 2.0)
        options.setdefault("health_check_interval", 15)
        return cls(aioredis.Redis.from_url(url, **options), prefix=prefix)

    @classmethod
    def from_cluster(cls, nodes: list[str], *, prefix: str = "tk:", **options: Any) -> RedisStore:
        """Connect lazily to the Redis Cluster that any of ``nodes`` (``host:port``) belongs to."""
        options.setdefault("health_check_interval", 15)
        return cls(cluster_client(nodes, **options), prefix=prefix)

    def _k(self, key: str) -> str:
        return self._prefix + key

    async def get(self, key: str) -> bytes | None:
        value = await self._client.get(self._k(key))
        return value if value is None or isinstance(value, bytes) else str(value).encode()

    async def set(
        self, key: str, value: bytes, *, ttl: float | None = None, only_if_absent: bool = False
    ) -> bool:
        px = max(1, int(ttl * 1000)) if ttl else None
        return bool(await self._client.set(self._k(key), value, px=px, nx=only_if_absent))

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        px = max(1, int(ttl * 1000)) if ttl else 0
        return int(await self._incr(keys=[self._k(key)], args=[amount, px]))

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        return int(await self._client.delete(*(self._k(k) for k in keys)))

    async def ttl(self, key: str) -> float | None:
        pttl = int(await self._client.pttl(self._k(key)))
        return pttl / 1000 if pttl >= 0 else None

    async def hit(self, key: str, limit: int, period: float) -> tuple[bool, int, float]:
        allowed, remaining, retry_ms = await self._gcra(
            keys=[self._k(key)], args=[repr(time.time()), limit, period]
        )
        return bool(allowed), int(remaining), int(retry_ms) / 1000

    async def reconcile(
        self, items: Sequence[tuple[str, int, int, float, bool]], now: float
    ) -> list[tuple[bool, float]]:
        """Add counts decided elsewhere to GCRA keys; one script call per key, pipelined.

        On a Redis Cluster the calls go concurrently instead (each to the master
        owning its key): redis-py refuses scripts in a cluster pipeline.

        Args:
            items: ``(key, count, limit, period, take)``: ``count`` events to add as is;
                ``take`` also tries one more event, GCRA-checked.
            now: The wall-clock time of the batch (``time.time()``).

        Returns:
            ``(taken, tat)`` per item: the shared theoretical arrival time afterwards.
        """
        if not items:
            return []
        stamp = repr(now)
        calls: list[tuple[list[str], list[str | int | float]]] = [
            ([self._k(key)], [stamp, limit, period, count, 1 if take else 0])
            for key, count, limit, period, take in items
        ]
        if len(calls) == 1:
            replies = [await self._reconcile(keys=calls[0][0], args=calls[0][1])]
        elif self._cluster:  # redis-py refuses scripts in a cluster pipeline: concurrent calls, one per key
            replies = await asyncio.gather(*(self._reconcile(keys=keys, args=args) for keys, args in calls))
        else:
            async with self._client.pipeline(transaction=False) as pipe:
                for keys, args in calls:
                    await self._reconcile(keys=keys, args=args, client=pipe)  # type: ignore[arg-type]  # a pipeline queues it
                replies = await pipe.execute()
        return [(bool(taken), now + float(offset)) for taken, offset in replies]

    async def publish(self, channel: str, message: bytes) -> None:
        if self._cluster:
            await self._client.spublish(self._k(channel), message)
        else:
            await self._client.publish(self._k(channel), message)

    async def _open_pubsub(self, channel: str) -> Any:
        """A pub/sub connection subscribed to ``channel`` (sharded on a cluster)."""
        if isinstance(self._client, RedisCluster):
            await self._client.initialize()  # the pub/sub routes by the slot map it does not load
        pubsub: Any = self._client.pubsub(ignore_subscribe_messages=True)
        try:
            if self._cluster:
                await pubsub.ssubscribe(self._k(channel))
            else:
                await pubsub.subscribe(self._k(channel))
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise
        return pubsub

    async def _next_message(self, pubsub: Any) -> bytes | None:
        if self._cluster:
            message = await pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=1.0)
            kind = "smessage"
        else:
            message = await pubsub.get_message(timeout=1.0)
            kind = "message"
        if message is None or message.get("type") != kind:
            return None
        data: bytes = message["data"]
        return data

    async def subscribe(
        self, channel: str, handler: MessageHandler, *, on_state: StateHandler | None = None
    ) -> _RedisSubscription:
        pubsub = await self._open_pubsub(channel)
        ready = asyncio.Event()
        task = asyncio.create_task(self._listen(pubsub, channel, handler, ready, on_state))
        await ready.wait()
        subscription = _RedisSubscription(task)
        self._subscriptions.append(subscription)
        return subscription

    async def _listen(
        self,
        pubsub: Any,
        channel: str,
        handler: MessageHandler,
        ready: asyncio.Event,
        on_state: StateHandler | None,
    ) -> None:
        def report(live: bool) -> None:
            if on_state is not None:
                on_state(live)

        report(True)
        ready.set()
        delay = 0.1
        healthy = True
        try:
            while True:
                try:
                    if not healthy:
                        with contextlib.suppress(Exception):
                            await pubsub.aclose()
                        if isinstance(self._client, _Cluster):  # a failover moved the slot?
                            await self._client.refresh()
                        pubsub = await self._open_pubsub(channel)
                        healthy = True
                        delay = 0.1
                        report(True)
                    data = await self._next_message(pubsub)
                    if data is not None:
                        await self._deliver(channel, handler, data)
                except (RedisError, OSError) as exc:
                    if healthy:
                        logger.warning("subscription to %s interrupted: %s; retrying", channel, exc)
                        healthy = False
                        report(False)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("subscription to %s ended unexpectedly", channel)
        finally:
            report(False)  # fail closed: caches relying on this channel stop trusting themselves
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    @staticmethod
    async def _deliver(channel: str, handler: MessageHandler, data: bytes) -> None:
        """Run one handler call; its failure is logged and never ends the subscription."""
        try:
            result = handler(data)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("subscription handler for %s failed", channel)

    async def ping(self) -> None:
        await self._client.ping()

    async def close(self) -> None:
        for subscription in self._subscriptions:
            await subscription.close()
        self._subscriptions.clear()
        await self._client.aclose()
