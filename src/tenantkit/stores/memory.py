"""In-process store for the embedded default and tests."""

from __future__ import annotations

import asyncio
import inspect
import time
from dataclasses import dataclass, field

from tenantkit.stores.base import MessageHandler, StateHandler
from tenantkit.stores.gcra import gcra

__all__ = ["MemoryStore"]


def _as_bytes(value: bytes | float) -> bytes:
    return value if isinstance(value, bytes) else repr(value).encode()


@dataclass(eq=False)
class _MemorySubscription:
    store: MemoryStore
    channel: str
    handler: MessageHandler
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def close(self) -> None:
        self.store._subscribers.get(self.channel, set()).discard(self)


class MemoryStore:
    """A dict with expiry. Share one instance between kits to simulate several processes."""

    name = "in-memory"

    def __init__(self, *, max_keys: int = 200_000) -> None:
        # A float value is a GCRA theoretical arrival time kept unencoded for ``hit``;
        # readers see it as ``repr(tat).encode()``, the text a store would hold.
        self._data: dict[str, tuple[bytes | float, float | None]] = {}
        self._subscribers: dict[str, set[_MemorySubscription]] = {}
        self._max_keys = max_keys
        self._lock = asyncio.Lock()

    def _live(self, key: str) -> tuple[bytes | float, float | None] | None:
        item = self._data.get(key)
        if item is not None and item[1] is not None and item[1] <= time.monotonic():
            del self._data[key]
            return None
        return item

    def _evict_if_full(self) -> None:
        if len(self._data) < self._max_keys:
            return
        now = time.monotonic()
        for key in [k for k, (_, exp) in self._data.items() if exp is not None and exp <= now]:
            del self._data[key]
        while len(self._data) >= self._max_keys:
            del self._data[next(iter(self._data))]

    def _put(self, key: str, value: bytes, ttl: float | None) -> None:
        if key not in self._data:
            self._evict_if_full()
        self._data[key] = (value, time.monotonic() + ttl if ttl else None)

    async def get(self, key: str) -> bytes | None:
        item = self._live(key)
        return _as_bytes(item[0]) if item else None

    async def set(
        self, key: str, value: bytes, *, ttl: float | None = None, only_if_absent: bool = False
    ) -> bool:
        if only_if_absent and self._live(key) is not None:
            return False
        self._put(key, value, ttl)
        return True

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        item = self._live(key)
        if item is None:
            self._put(key, str(amount).encode(), ttl)
            return amount
        value = int(_as_bytes(item[0])) + amount
        self._data[key] = (str(value).encode(), item[1])
        return value

    async def delete(self, *keys: str) -> int:
        count = 0
        for key in keys:
            if self._live(key) is not None:
                count += 1
            self._data.pop(key, None)
        return count

    async def ttl(self, key: str) -> float | None:
        item = self._live(key)
        if item is None or item[1] is None:
            return None
        return max(0.0, item[1] - time.monotonic())

    async def hit(self, key: str, limit: int, period: float) -> tuple[bool, int, float]:
        # The rate limiter's hot path: ``_live`` and ``_put`` inlined, one clock read.
        data = self._data
        item = data.get(key)
        now = time.monotonic()
        if item is not None and item[1] is not None and item[1] <= now:
            del data[key]
            item = None
        tat = 0.0 if item is None else item[0] if isinstance(item[0], float) else float(item[0])
        allowed, new_tat, remaining, retry_after = gcra(tat, now, limit, period)
        if allowed:
            if item is None:
                self._evict_if_full()
            data[key] = (new_tat, new_tat)  # expires at the new TAT
        return allowed, remaining, retry_after

    async def publish(self, channel: str, message: bytes) -> None:
        for subscription in list(self._subscribers.get(channel, ())):
            result = subscription.handler(message)
            if inspect.isawaitable(result):
                await result

    async def subscribe(
        self, channel: str, handler: MessageHandler, *, on_state: StateHandler | None = None
    ) -> _MemorySubscription:
        subscription = _MemorySubscription(self, channel, handler)
        self._subscribers.setdefault(channel, set()).add(subscription)
        if on_state is not None:
            on_state(True)
        return subscription

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
