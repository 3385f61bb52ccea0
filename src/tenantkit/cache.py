"""In-process caches kept coherent across instances through store pub/sub.

A warm request must not pay a network round trip, yet a revocation or a role
change on any instance must be seen on the very next request everywhere.
:class:`SyncedCache` keeps loaded values locally and drops a key when any
instance publishes it on the cache's channel. While the subscription is not
known to be live (before it starts, after the connection drops) the cache is
bypassed and every lookup goes to the loader, so no stale value survives a
gap in which invalidations could have been missed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from tenantkit.stores.base import Store, Subscription

__all__ = ["SyncedCache"]

logger = logging.getLogger("tenantkit.cache")

V = TypeVar("V")
_MISSING = object()


class SyncedCache(Generic[V]):
    """A bounded, TTL'd local cache invalidated by messages on ``channel``.

    Args:
        store: The store whose pub/sub carries invalidations.
        channel: Channel name (one per kind of cached thing).
        loader: ``await loader(key)`` produces the value on a miss.
        ttl: Seconds a value may be served without reloading (a safety net).
        max_entries: Bound on memory; the oldest entries go first.
    """

    def __init__(
        self,
        store: Store,
        channel: str,
        loader: Callable[[str], Awaitable[V]],
        *,
        ttl: float = 300.0,
        max_entries: int = 10_000,
    ) -> None:
        self._store = store
        self.channel = channel
        self._loader = loader
        self._ttl = ttl
        self._max = max_entries
        self._values: dict[str, tuple[V, float]] = {}
        self._live = False
        self._generation = 0
        self._subscription: Subscription | None = None

    @property
    def live(self) -> bool:
        """Whether invalidations are being received (values are cached only then)."""
        return self._live

    async def start(self) -> None:
        """Subscribe to invalidations; caching starts once the subscription is live."""
        if self._subscription is None:
            self._subscription = await self._store.subscribe(
                self.channel, self._on_message, on_state=self._on_state
            )

    async def stop(self) -> None:
        self._live = False
        self._values.clear()
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None

    def _on_state(self, live: bool) -> None:
        self._generation += 1
        self._values.clear()
        self._live = live
        if not live:
            logger.warning("cache %s: invalidation channel down, bypassing cache", self.channel)

    def _on_message(self, message: bytes) -> None:
        self._generation += 1
        for key in message.decode().split("\n"):
            if key == "*":
                self._values.clear()
            else:
                self._values.pop(key, None)

    async def get(self, key: str) -> V:
        """The value for ``key``, from memory when fresh, else from the loader."""
        item = self._values.get(key)
        now = time.monotonic()
        if item is not None and item[1] > now:
            return item[0]
        generation = self._generation
        value = await self._loader(key)
        if self._live and generation == self._generation:
            if len(self._values) >= self._max:
                self._values.pop(next(iter(self._values)))
            self._values[key] = (value, now + self._ttl)
        return value

    def forget(self, *keys: str) -> None:
        """Drop keys locally only."""
        for key in keys:
            self._values.pop(key, None)

    async def invalidate(self, *keys: str) -> None:
        """Drop keys here and on every instance (``"*"`` drops everything)."""
        self._generation += 1
        self.forget(*keys)
        if "*" in keys:
            self._values.clear()
        await self._store.publish(self.channel, "\n".join(keys).encode())
