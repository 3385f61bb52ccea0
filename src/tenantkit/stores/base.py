"""The ``Store`` protocol every backend implements."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from tenantkit.settings import Settings

__all__ = ["MessageHandler", "ReconcilingStore", "StateHandler", "Store", "Subscription", "create_store"]

MessageHandler = Callable[[bytes], Awaitable[None] | None]
StateHandler = Callable[[bool], None]


class Subscription(Protocol):
    """A live channel subscription; ``close()`` ends it."""

    async def close(self) -> None: ...


@runtime_checkable
class Store(Protocol):
    """Async key-value store with TTLs, atomic counters and pub/sub.

    Keys are plain strings; implementations add their own prefix. Keys that
    belong to a tenant or user should carry a ``{hash tag}`` so multi-key
    operations stay in one Redis Cluster slot.
    """

    name: str

    async def get(self, key: str) -> bytes | None:
        """The value at ``key``, or ``None`` when absent or expired."""

    async def set(
        self, key: str, value: bytes, *, ttl: float | None = None, only_if_absent: bool = False
    ) -> bool:
        """Store ``value``; with ``only_if_absent`` do nothing if the key exists. True if written."""

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        """Atomically add ``amount``; ``ttl`` applies when the counter is created."""

    async def delete(self, *keys: str) -> int:
        """Remove keys; returns how many existed."""

    async def ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires; ``None`` when absent or without expiry."""

    async def hit(self, key: str, limit: int, period: float) -> tuple[bool, int, float]:
        """Count one event against a ``limit``-per-``period`` window (GCRA).

        Returns ``(allowed, remaining, retry_after_seconds)``; atomic.
        """

    async def publish(self, channel: str, message: bytes) -> None:
        """Send ``message`` to every subscriber of ``channel`` (every instance)."""

    async def subscribe(
        self, channel: str, handler: MessageHandler, *, on_state: StateHandler | None = None
    ) -> Subscription:
        """Call ``handler`` for every message published on ``channel`` from now on.

        ``on_state(True)`` is called once the subscription is live and again
        after a reconnection; ``on_state(False)`` when the connection drops
        (messages may have been missed while it was down).
        """

    async def ping(self) -> None:
        """Raise if the backend is unreachable."""

    async def close(self) -> None:
        """Release connections and subscriptions."""


@runtime_checkable
class ReconcilingStore(Protocol):
    """A shared store whose GCRA cells accept counts decided in process (``RedisStore``).

    The rate limiter keeps its decisions local and reconciles them in batches
    with a store that has this method; with any other store (``MemoryStore``,
    exact in one process) it calls :meth:`Store.hit` per event.
    """

    async def reconcile(
        self, items: Sequence[tuple[str, int, int, float, bool]], now: float
    ) -> list[tuple[bool, float]]:
        """For each ``(key, count, limit, period, take)``: add ``count`` events, then with
        ``take`` try one more (GCRA); answer ``(taken, shared TAT)``. Atomic per key."""
        ...


def create_store(settings: Settings) -> Store:
    """``RedisStore`` on ``redis_cluster_nodes`` (a cluster) or ``redis_url``, else a ``MemoryStore``."""
    if settings.redis_cluster_nodes:
        from tenantkit.stores.redis import RedisStore

        return RedisStore.from_cluster(settings.redis_cluster_nodes, prefix=settings.redis_key_prefix)
    if settings.redis_url:
        from tenantkit.stores.redis import RedisStore

        return RedisStore.from_url(settings.redis_url, prefix=settings.redis_key_prefix)
    from tenantkit.stores.memory import MemoryStore

    return MemoryStore()
