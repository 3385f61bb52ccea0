"""Per-account lockout after consecutive failures (unknown emails behave the same).

Attempts are counted *before* the password check, atomically, so N parallel
wrong guesses can never all be judged: the threshold holds exactly.
"""

from __future__ import annotations

import math

from tenantkit.errors import AccountLockedError
from tenantkit.stores.base import Store

__all__ = ["Lockout"]


class Lockout:
    """Counts attempts per email in the store.

    Args:
        store: Shared store (counters are atomic there).
        threshold: Consecutive failures that lock the account.
        seconds: Lock duration, and the window in which failures count.
    """

    def __init__(self, store: Store, *, threshold: int, seconds: int) -> None:
        self._store = store
        self.threshold = threshold
        self.seconds = seconds

    @staticmethod
    def _keys(email: str) -> tuple[str, str]:
        tag = f"{{e:{email}}}"
        return f"lk:{tag}:attempts", f"lk:{tag}:lock"

    def _locked(self, retry_after: float | None) -> AccountLockedError:
        seconds = max(1, math.ceil(retry_after if retry_after is not None else self.seconds))
        return AccountLockedError(
            "Too many failed attempts; the account is temporarily locked.",
            headers={"Retry-After": str(seconds)},
        )

    async def begin(self, email: str) -> int:
        """Count an attempt; raise :class:`AccountLockedError` when locked. Returns the attempt number."""
        attempts_key, lock_key = self._keys(email)
        remaining = await self._store.ttl(lock_key)
        if remaining is not None:
            raise self._locked(remaining)
        attempt = await self._store.incr(attempts_key, ttl=self.seconds)
        if attempt > self.threshold:
            raise self._locked(await self._store.ttl(lock_key))
        return attempt

    async def failed(self, email: str, attempt: int) -> bool:
        """Record a failure of ``attempt``; True when this failure locked the account."""
        if attempt < self.threshold:
            return False
        attempts_key, lock_key = self._keys(email)
        await self._store.set(lock_key, b"1", ttl=self.seconds)
        await self._store.delete(attempts_key)
        return True

    async def succeeded(self, email: str) -> None:
        """A success resets the count."""
        await self._store.delete(self._keys(email)[0])

    async def clear(self, email: str) -> None:
        """Lift a lock (after a password reset)."""
        await self._store.delete(*self._keys(email))
