"""Read replicas: which engine a read may use, and who must stay on the primary.

:class:`Replicas` holds one engine per streaming replica and decides, without
any network I/O on the request path, whether a read may go to one of them:

* **Health and lag** are measured in the background every
  ``check_seconds``: ``now() - pg_last_xact_replay_timestamp()`` on the
  replica (zero while it has replayed everything its WAL receiver got, so an
  idle primary does not make a healthy replica look late). A replica that
  does not answer, or lags more than ``max_lag`` seconds, is skipped until a
  later check finds it well; a connection found dead when a read begins marks
  it down at once. No usable replica: the primary.
* **Read your writes**: a statement that writes on the primary marks the
  running request (a ``ContextVar`` tied to its request id) and its user. The
  request's later reads, and that user's reads for ``window`` seconds, go to
  the primary. The writing process knows at once; other processes learn it
  from a message on the store's ``tenantkit:db-writes`` channel (one publish
  per request that writes). While that channel is not known to be live, and
  for ``window`` seconds after it (re)connects (messages may have been missed),
  every read goes to the primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import Context, ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import event, exc, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.engine.interfaces import DBAPIConnection, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from tenantkit.context import current_principal, current_request_id

__all__ = ["CHANNEL", "Replica", "Replicas", "WriteChannel", "wrote_in_this_request"]

logger = logging.getLogger("tenantkit.db.replicas")

#: The store channel carrying "this user just wrote" between processes.
CHANNEL = "tenantkit:db-writes"

#: Seconds to wait for a replica connection before using the primary instead.
CONNECT_TIMEOUT = 3.0

_LAG = text(
    "SELECT CASE"
    " WHEN NOT pg_is_in_recovery() THEN 0.0"
    " WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()"
    "  AND EXISTS (SELECT FROM pg_stat_wal_receiver) THEN 0.0"
    " ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 END"
)

#: First words of statements that change nothing another reader could miss.
_READS = frozenset(
    {"select", "show", "explain", "savepoint", "release", "rollback", "commit", "begin", "set", "reset"}
)

#: Users remembered before expired entries are swept (each entry lives one window).
_MAX_REMEMBERED = 100_000

_NEVER = object()
_wrote_in: ContextVar[object] = ContextVar("tenantkit_wrote_in", default=_NEVER)


def wrote_in_this_request() -> bool:
    """Whether the running request (or job, or script) has written on the primary."""
    marker = _wrote_in.get()
    return marker is not _NEVER and marker == current_request_id()


def _is_write(statement: str, context: Any) -> bool:
    if context is not None and (context.isinsert or context.isupdate or context.isdelete or context.isddl):
        return True
    head = statement.lstrip(" \t\r\n(").split(None, 1)
    return not head or head[0].lower() not in _READS


class WriteChannel(Protocol):
    """The part of a store that carries write notices (``tenantkit.stores.Store`` fits)."""

    async def publish(self, channel: str, message: bytes) -> None: ...

    async def subscribe(
        self,
        channel: str,
        handler: Callable[[bytes], Awaitable[None] | None],
        *,
        on_state: Callable[[bool], None] | None = None,
    ) -> Any: ...


@dataclass(eq=False)
class Replica:
    """One read replica: its engine, session factory, and what the last check found."""

    name: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    healthy: bool = False
    lag: float | None = None
    checked_at: float = 0.0
    reads: int = field(default=0)

    def mark_down(self, reason: str) -> None:
        if self.healthy:
            logger.warning("read replica %s skipped: %s", self.name, reason)
        self.healthy = False


def _replica_name(url: str) -> str:
    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"


def _checkout_alive(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry, _proxy: Any) -> None:
    """Refuse a pooled connection the server already closed (no round trip: asyncpg knows)."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    is_closed = getattr(driver, "is_closed", None)
    if is_closed is not None and is_closed():
        raise exc.DisconnectionError("replica connection closed by the server")


class Replicas:
    """The read replicas of one primary and the routing rules between them.

    Args:
        engines: ``(url, engine)`` per replica, engines built like the primary's.
        session_class: The sync session class (``ScopedSession``: tenant scoping and RLS apply).
        max_lag: Seconds of replay lag beyond which a replica is skipped.
        check_seconds: Interval of the background health and lag check.
        window: Seconds a user's reads stay on the primary after they wrote.
    """

    def __init__(
        self,
        engines: list[tuple[str, AsyncEngine]],
        *,
        session_class: type[Any],
        max_lag: float,
        check_seconds: float,
        window: float,
    ) -> None:
        self.replicas: list[Replica] = []
        for url, engine in engines:
            maker = async_sessionmaker(engine, expire_on_commit=False, sync_session_class=session_class)
            replica = Replica(_replica_name(url), engine, maker)
            event.listen(engine.sync_engine.pool, "checkout", _checkout_alive)
            event.listen(engine.sync_engine, "handle_error", self._on_error(replica))
            self.replicas.append(replica)
        self.max_lag = max_lag
        self.check_seconds = check_seconds
        self.window = window
        self._recent: dict[uuid.UUID, float] = {}
        self._next = 0
        self._monitor: asyncio.Task[None] | None = None
        self._channel: WriteChannel | None = None
        self._subscription: Any = None
        # Without a channel this process is the only writer: what it knows is complete.
        self._trusted_from: float | None = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    # ---------------------------------------------------------------- writes

    def share_writes(self, channel: WriteChannel) -> None:
        """Tell other processes about writes (and hear theirs) through ``channel``."""
        self._channel = channel
        self._trusted_from = None  # until the subscription is live

    def watch(self, primary: AsyncEngine) -> None:
        """Notice every statement that writes on ``primary``."""
        event.listen(primary.sync_engine, "before_cursor_execute", self._before_execute)

    def _before_execute(
        self, _conn: Connection, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        if _is_write(statement, context):
            self.note_write()

    def note_write(self) -> None:
        """Record a write of the running request and its user (called on the primary's writes).

        Other processes are told once per request that writes (and again when a
        long request keeps writing past half a window).
        """
        request = current_request_id()
        marker = _wrote_in.get()
        first = marker is _NEVER or marker != request
        if first:
            _wrote_in.set(request)
        principal = current_principal()
        if principal is None:
            return
        now = time.monotonic()
        previous = self._recent.get(principal.user_id, 0.0)
        self._remember(principal.user_id, now + self.window)
        if self._channel is not None and (first or previous < now + self.window / 2):
            self._spawn(self._publish(principal.user_id))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a sync script): nobody else to tell in time
            coro.close()
            return
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, user_id: uuid.UUID) -> None:
        assert self._channel is not None
        try:
            await self._channel.publish(CHANNEL, user_id.bytes)
        except Exception as error:  # the others' subscriptions are down too, or will be
            logger.warning("could not publish a write notice: %s", type(error).__name__)

    def _on_notice(self, message: bytes) -> None:
        with contextlib.suppress(ValueError):
            self._remember(uuid.UUID(bytes=message), time.monotonic() + self.window)

    def _remember(self, user_id: uuid.UUID, until: float) -> None:
        self._recent[user_id] = until
        if len(self._recent) > _MAX_REMEMBERED:
            now = time.monotonic()
            self._recent = {user: end for user, end in self._recent.items() if end > now}

    def _on_state(self, live: bool) -> None:
        # Notices may have been missed while the channel was down: trust it a window later.
        self._trusted_from = time.monotonic() + self.window if live else None

    # ---------------------------------------------------------------- reads

    @property
    def ready(self) -> bool:
        """Whether a read that follows no recent write would use a replica now."""
        trusted = self._trusted_from
        return trusted is not None and trusted <= time.monotonic() and any(r.healthy for r in self.replicas)

    def must_use_primary(self) -> bool:
        """Whether the running request must read on the primary (no I/O)."""
        if wrote_in_this_request():
            return True
        trusted_from = self._trusted_from
        now = time.monotonic()
        if trusted_from is None or trusted_from > now:
            return True
        principal = current_principal()
        if principal is None:
            return False
        until = self._recent.get(principal.user_id)
        if until is None:
            return False
        if until <= now:
            self._recent.pop(principal.user_id, None)
            return False
        return True

    def candidates(self) -> list[Replica]:
        """Usable replicas, round robin (empty: read on the primary)."""
        healthy = [replica for replica in self.replicas if replica.healthy]
        if not healthy:
            return []
        self._next = (self._next + 1) % len(healthy)
        return healthy[self._next :] + healthy[: self._next]

    async def connect(self, replica: Replica) -> AsyncConnection | None:
        """A connection to ``replica``, or ``None`` (and the replica marked down) when it fails."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                return await replica.engine.connect()
        except (exc.SQLAlchemyError, OSError, TimeoutError) as error:
            replica.mark_down(f"connection failed ({type(error).__name__})")
            return None

    def _on_error(self, replica: Replica) -> Callable[[ExceptionContext], None]:
        def handle(context: ExceptionContext) -> None:
            if context.is_disconnect:
                replica.mark_down("connection lost")

        return handle

    # ---------------------------------------------------------------- checks

    async def start(self) -> None:
        """Subscribe to write notices and start the health check (idempotent)."""
        if self._monitor is not None:
            return
        # A context of its own: the first reader's request, tenant and user stay theirs.
        self._monitor = asyncio.get_running_loop().create_task(self._watch(), context=Context())
        if self._channel is not None and self._subscription is None:
            try:
                self._subscription = await self._channel.subscribe(
                    CHANNEL, self._on_notice, on_state=self._on_state
                )
            except Exception as error:  # stays untrusted: reads use the primary
                logger.warning("write notices unavailable: %s", type(error).__name__)

    async def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.close()
            self._subscription = None
        for task in list(self._tasks):
            task.cancel()
        for replica in self.replicas:
            replica.healthy = False
            await replica.engine.dispose()

    async def _watch(self) -> None:
        while True:
            await asyncio.gather(*(self.check(replica) for replica in self.replicas))
            await asyncio.sleep(self.check_seconds)

    async def check(self, replica: Replica) -> None:
        """Measure ``replica``'s lag now; mark it usable or skipped."""
        try:
            async with asyncio.timeout(max(self.check_seconds, CONNECT_TIMEOUT)):
                async with replica.engine.connect() as connection:
                    lag = (await connection.execute(_LAG)).scalar()
        except Exception as error:
            replica.lag = None
            replica.mark_down(f"health check failed ({type(error).__name__})")
            return
        finally:
            replica.checked_at = time.monotonic()
        replica.lag = None if lag is None else float(lag)
        if replica.lag is None or replica.lag > self.max_lag:
            replica.mark_down(f"replay lag {replica.lag}s over {self.max_lag}s")
        elif not replica.healthy:
            logger.info("read replica %s in use (lag %.3fs)", replica.name, replica.lag)
            replica.healthy = True
