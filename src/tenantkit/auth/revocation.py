"""Which sessions are revoked: the database is the truth, every process caches it.

``auth_sessions.revoked_at`` decides. Each process keeps a bounded map of
session id → live/revoked in memory, so a request whose session was seen
before does no network I/O:

- **First sight** of a session id in a process reads the database (one
  primary-key lookup; a session that does not exist is revoked) together
  with the store's revocation mark, and caches the answer.
- **Revoking** writes the store mark, publishes the ids on the
  ``revoked-sessions`` channel (every process marks them revoked at once,
  without reading anything) and marks them here.
- **At start** the cache is warmed with the sessions revoked within the last
  access-token lifetime, so a restart or a flushed store never revives a
  logged-out session, and its first request needs no lookup.
- **While the channel is down** (before it is live, after the connection
  drops) a revocation elsewhere may be missed: "live" answers are then kept
  for ``degraded_ttl`` seconds only (5 by default), which bounds how long a
  missed revocation can go unseen. "Revoked" answers never need a check.
- **When neither the cache nor the database answers**, the check fails
  closed (503) unless ``fail_closed`` is off.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from tenantkit.db.base import utcnow
from tenantkit.db.engine import Database
from tenantkit.db.models import AuthSession
from tenantkit.errors import ServiceUnavailableError
from tenantkit.stores.base import Store, Subscription

__all__ = ["RevocationList"]

logger = logging.getLogger("tenantkit.auth")

CHANNEL = "revoked-sessions"
_LOOKUP_SQL = "SELECT revoked_at FROM auth_sessions WHERE id = $1"


def _key(session_id: str) -> str:
    return f"rv:{{s:{session_id}}}"


class RevocationList:
    """Which sessions are revoked, answered from memory once a session has been seen.

    Args:
        store: Shared store: revocation marks and the invalidation channel.
        database: Holds ``auth_sessions``, the truth.
        mark_ttl: Seconds an access token of a session can outlive its
            revocation (access-token lifetime plus leeway); marks and cached
            "revoked" answers live that long, and the start-up warm-up reads
            the sessions revoked within it.
        live_ttl: Seconds a "live" answer is kept while the channel is live
            (a safety net; revocations arrive on the channel).
        degraded_ttl: Seconds a "live" answer is kept while the channel is
            down: the bound on how late a revocation made elsewhere is seen.
        fail_closed: When the database cannot answer a first sight, refuse
            (503) rather than admit.
        max_entries: Bound on the cache; the oldest entries go first.
        lookup_timeout: Seconds a first-sight lookup may take before failing.
    """

    def __init__(
        self,
        store: Store,
        database: Database,
        *,
        mark_ttl: float,
        live_ttl: float = 300.0,
        degraded_ttl: float = 5.0,
        fail_closed: bool = True,
        max_entries: int = 100_000,
        lookup_timeout: float = 5.0,
    ) -> None:
        self._store = store
        self._database = database
        self.mark_ttl = mark_ttl
        self.live_ttl = live_ttl
        self.degraded_ttl = degraded_ttl
        self.fail_closed = fail_closed
        self.max_entries = max_entries
        self.lookup_timeout = lookup_timeout
        #: session id → (revoked, monotonic expiry); insertion order is age.
        self._entries: dict[str, tuple[bool, float]] = {}
        self._loading: dict[str, asyncio.Task[bool]] = {}
        self._live = False
        self._epoch = 0  # bumped on every channel state change
        self._subscription: Subscription | None = None

    def __repr__(self) -> str:
        return f"RevocationList(entries={len(self._entries)}, live={self._live})"

    @property
    def live(self) -> bool:
        """Whether revocations from other processes are being received."""
        return self._live

    # ------------------------------------------------------------------ #
    # Life cycle
    # ------------------------------------------------------------------ #

    async def start(self) -> None:
        """Subscribe to the channel, then warm the cache from the database."""
        if self._subscription is None:
            self._subscription = await self._store.subscribe(
                CHANNEL, self._on_message, on_state=self._on_state
            )
        await self.warm()

    async def stop(self) -> None:
        self._live = False
        self._entries.clear()
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None

    async def warm(self) -> int:
        """Cache the sessions revoked within ``mark_ttl``; returns how many (0 if the database is down)."""
        since = utcnow() - timedelta(seconds=self.mark_ttl)
        query = (
            select(AuthSession.id)
            .where(AuthSession.revoked_at >= since)
            .order_by(AuthSession.revoked_at.desc())
            .limit(self.max_entries)
        )
        try:
            async with asyncio.timeout(self.lookup_timeout), self._database.engine.connect() as connection:
                ids = list((await connection.execute(query)).scalars())
        except Exception as exc:
            logger.warning("revocation cache not warmed: %s", type(exc).__name__)
            return 0
        for session_id in reversed(ids):  # the most recent end up youngest
            self._put(str(session_id), True)
        return len(ids)

    # ------------------------------------------------------------------ #
    # The channel
    # ------------------------------------------------------------------ #

    def _on_state(self, live: bool) -> None:
        # Revocations may have been missed while the channel was down: forget
        # every "live" answer (a "revoked" one stays true whatever happened).
        self._epoch += 1
        self._live = live
        self._drop_live()
        if not live:
            logger.warning(
                "revocation channel down: live sessions are re-checked every %ss", self.degraded_ttl
            )

    def _on_message(self, message: bytes) -> None:
        for key in message.decode().split("\n"):
            if key == "*":
                self._drop_live()
            elif key:
                self._put(key, True)

    def _drop_live(self) -> None:
        self._entries = {key: item for key, item in self._entries.items() if item[0]}

    def _put(self, key: str, revoked: bool) -> None:
        ttl = self.mark_ttl if revoked else (self.live_ttl if self._live else self.degraded_ttl)
        self._entries.pop(key, None)
        while len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = (revoked, time.monotonic() + ttl)

    # ------------------------------------------------------------------ #
    # Checks
    # ------------------------------------------------------------------ #

    async def is_revoked(self, session_id: uuid.UUID | str) -> bool:
        """Whether ``session_id`` was revoked (no I/O when the answer is cached).

        Raises:
            ServiceUnavailableError: neither the cache nor the database answers
                and ``fail_closed`` is set.
        """
        key = str(session_id)
        item = self._entries.get(key)
        if item is not None and item[1] > time.monotonic():
            return item[0]
        # one lookup per session id however many requests wait for it; a
        # waiter that goes away does not cancel it for the others
        task = self._loading.get(key)
        if task is None:
            task = asyncio.create_task(self._first_sight(key))
            self._loading[key] = task
            task.add_done_callback(functools.partial(self._loaded, key))
        return await asyncio.shield(task)

    def _loaded(self, key: str, task: asyncio.Task[bool]) -> None:
        if self._loading.get(key) is task:
            del self._loading[key]
        if not task.cancelled():
            task.exception()  # retrieved, even when every waiter has gone away

    async def _first_sight(self, key: str) -> bool:
        epoch = self._epoch
        try:
            revoked = await self._lookup(key)
        except Exception as exc:
            logger.warning("revocation check failed: %s", type(exc).__name__)
            if self.fail_closed:
                raise ServiceUnavailableError(
                    "Session state is temporarily unavailable.", headers={"Retry-After": "5"}
                ) from None
            return False
        current = self._entries.get(key)
        if current is not None and current[0]:
            return True  # revoked on the channel while we were reading
        if revoked or epoch == self._epoch:
            self._put(key, revoked)
        return revoked

    async def _lookup(self, key: str) -> bool:
        """The truth for one session: the store's mark, else the database's ``revoked_at``."""
        try:
            session_id = uuid.UUID(key)
        except ValueError:
            return True
        mark: asyncio.Task[bytes | None] | None = None
        if self._live:  # skip the store while it is known to be down
            mark = asyncio.create_task(self._store.get(_key(key)))
        try:
            revoked = await self._read_database(session_id)
        except Exception:
            if mark is not None and await _quietly(mark) is not None:
                return True  # the database is down but the store knows
            raise
        # a mark without revoked_at is a revocation whose row is not yet committed
        marked = mark is not None and await _quietly(mark) is not None
        return revoked or marked

    async def _read_database(self, session_id: uuid.UUID) -> bool:
        async with asyncio.timeout(self.lookup_timeout), self._database.engine.connect() as connection:
            if self._database.dialect == "postgresql":
                # one round trip on the driver (prepared once per connection), no BEGIN/ROLLBACK
                raw = await connection.get_raw_connection()
                driver: Any = raw.driver_connection
                try:
                    row = await driver.fetchrow(_LOOKUP_SQL, session_id)
                except Exception as exc:
                    await connection.invalidate(exc)
                    raise
            else:
                statement = select(AuthSession.revoked_at).where(AuthSession.id == session_id)
                row = (await connection.execute(statement)).first()
        return row is None or row[0] is not None

    # ------------------------------------------------------------------ #
    # Revoking
    # ------------------------------------------------------------------ #

    async def revoke(self, *session_ids: uuid.UUID) -> None:
        """Mark sessions revoked in the store and on every process, at once.

        The caller records ``revoked_at`` in the database (the truth); call
        this once that is committed, or just before: a revoked answer is
        never taken back.

        Raises:
            ServiceUnavailableError: the mark could not be recorded or published.
        """
        if not session_ids:
            return
        keys = [str(s) for s in session_ids]
        try:
            for key in keys:
                await self._store.set(_key(key), b"1", ttl=self.mark_ttl)
            await self._store.publish(CHANNEL, "\n".join(keys).encode())
        except Exception as exc:
            logger.error("could not record a revocation: %s", type(exc).__name__)
            raise ServiceUnavailableError(
                "The sign-out could not be recorded; try again.", headers={"Retry-After": "5"}
            ) from None
        self.mark_revoked(keys)

    def mark_revoked(self, session_ids: Iterable[uuid.UUID | str]) -> None:
        """Mark sessions revoked in this process only (no I/O)."""
        for session_id in session_ids:
            self._put(str(session_id), True)


async def _quietly(task: asyncio.Task[bytes | None]) -> bytes | None:
    """The task's result, or ``None`` if it failed (a store that cannot answer proves nothing)."""
    try:
        return await task
    except Exception:
        return None
