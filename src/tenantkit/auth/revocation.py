"""Instant revocation of sessions without a database query per request.

Revoking a session writes a mark in the store (TTL: the longest an access
token of that session can still live) and publishes the session id, so every
instance drops its cached answer. Checks are answered from a
:class:`~tenantkit.cache.SyncedCache`; a miss costs one store read.
"""

from __future__ import annotations

import logging
import uuid

from tenantkit.cache import SyncedCache
from tenantkit.errors import ServiceUnavailableError
from tenantkit.stores.base import Store

__all__ = ["RevocationList"]

logger = logging.getLogger("tenantkit.auth")


def _key(session_id: str) -> str:
    return f"rv:{{s:{session_id}}}"


class RevocationList:
    """Which sessions are revoked.

    Args:
        store: Shared store holding the marks.
        mark_ttl: Seconds a mark lives (access-token lifetime plus leeway).
        fail_closed: When the store cannot answer, refuse (503) rather than admit.
    """

    def __init__(self, store: Store, *, mark_ttl: int, fail_closed: bool = True) -> None:
        self._store = store
        self._mark_ttl = mark_ttl
        self._fail_closed = fail_closed
        self.cache: SyncedCache[bool] = SyncedCache(store, "revoked-sessions", self._load, ttl=mark_ttl)

    async def _load(self, session_id: str) -> bool:
        return await self._store.get(_key(session_id)) is not None

    async def start(self) -> None:
        await self.cache.start()

    async def stop(self) -> None:
        await self.cache.stop()

    async def is_revoked(self, session_id: uuid.UUID | str) -> bool:
        """Whether ``session_id`` was revoked.

        Raises:
            ServiceUnavailableError: the store is unreachable and ``fail_closed`` is set.
        """
        try:
            return await self.cache.get(str(session_id))
        except Exception as exc:
            if self._fail_closed:
                logger.warning("revocation check failed: %s", type(exc).__name__)
                raise ServiceUnavailableError(
                    "Session state is temporarily unavailable.", headers={"Retry-After": "5"}
                ) from None
            return False

    async def revoke(self, *session_ids: uuid.UUID) -> None:
        """Mark sessions revoked everywhere, at once.

        Raises:
            ServiceUnavailableError: the mark could not be recorded.
        """
        if not session_ids:
            return
        try:
            for session_id in session_ids:
                await self._store.set(_key(str(session_id)), b"1", ttl=self._mark_ttl)
            await self.cache.invalidate(*(str(s) for s in session_ids))
        except Exception as exc:
            logger.error("could not record a revocation: %s", type(exc).__name__)
            raise ServiceUnavailableError(
                "The sign-out could not be recorded; try again.", headers={"Retry-After": "5"}
            ) from None
