"""Async engine and session factory for PostgreSQL (asyncpg) and SQLite (aiosqlite)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry

from tenantkit.db.replicas import Replicas, WriteChannel
from tenantkit.settings import Settings

__all__ = ["Database", "ScopedSession", "UnitOfWork"]


class ScopedSession(Session):
    """The sync session class behind tenantkit's ``AsyncSession`` factory.

    Tenant scoping listeners attach to this class only, so they never leak
    onto sessions an application creates for other purposes.
    """


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class UnitOfWork:
    """A session inside one transaction, and what to do once that transaction has committed.

    Side effects that must not happen for a rolled-back change (hooks, audit rows,
    cache invalidation, ending sessions) are queued with :meth:`after_commit`.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._after: list[Callable[[], Awaitable[Any]]] = []

    def after_commit(self, callback: Callable[[], Awaitable[Any]]) -> None:
        """Run ``callback`` after the commit (in order); never when the transaction fails."""
        self._after.append(callback)

    async def _committed(self) -> None:
        for callback in self._after:
            await callback()


class Database:
    """An async engine plus the session factory that tenant scoping hooks into.

    Args:
        url: ``postgresql+asyncpg://...`` or ``sqlite+aiosqlite:///...``.
        settings: Pool settings are read from here when given.
        engine_options: Extra keyword arguments for ``create_async_engine``.
    """

    def __init__(self, url: str, *, settings: Settings | None = None, **engine_options: Any) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(url, **_engine_options(url, settings, engine_options))
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=ScopedSession
        )
        self.replicas: Replicas | None = None
        if settings is not None and settings.database_replica_urls:
            self.replicas = Replicas(
                [
                    (url, create_async_engine(url, **_engine_options(url, settings, engine_options)))
                    for url in settings.database_replica_urls
                ],
                session_class=ScopedSession,
                max_lag=settings.database_replica_max_lag_seconds,
                check_seconds=settings.database_replica_check_seconds,
                window=settings.database_read_your_writes_seconds,
            )
            self.replicas.watch(self.engine)

    @property
    def dialect(self) -> str:
        """``"postgresql"`` or ``"sqlite"``."""
        return self.engine.dialect.name

    def session(self) -> AsyncSession:
        """A new tenant-scoped ``AsyncSession`` on the primary (``async with db.session() as s``)."""
        return self.sessionmaker()

    @contextlib.asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A tenant-scoped session for reads that tolerate replication lag.

        On a read replica when one is configured, healthy and within the lag
        bound, and the running request has not written nor its user within the
        read-your-writes window; on the primary otherwise (a replica that
        cannot be reached falls back to the primary, no error). The same
        scoping and row-level security apply. Never write through it.

        Example:
            ```python
            async with database.read_session() as session:
                products = (await session.scalars(select(Product))).all()
            ```
        """
        replicas = self.replicas
        if replicas is not None:
            await replicas.start()
            if not replicas.must_use_primary():
                for replica in replicas.candidates():
                    connection = await replicas.connect(replica)
                    if connection is None:
                        continue
                    replica.reads += 1
                    try:
                        async with replica.sessionmaker(bind=connection) as session:
                            yield session
                    finally:
                        await connection.close()
                    return
        async with self.session() as session:
            yield session

    @contextlib.asynccontextmanager
    async def read_connection(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection for reads that tolerate replication lag (the rules of :meth:`read_session`).

        For prebuilt hot reads (:class:`tenantkit.db.scoping.ScopedRead`); never write through it.
        """
        replicas = self.replicas
        if replicas is not None:
            await replicas.start()
            if not replicas.must_use_primary():
                for replica in replicas.candidates():
                    connection = await replicas.connect(replica)
                    if connection is None:
                        continue
                    replica.reads += 1
                    try:
                        yield connection
                    finally:
                        await connection.close()
                    return
        async with self.engine.connect() as connection:
            yield connection

    def share_writes(self, channel: WriteChannel) -> None:
        """Hear and tell other processes which users just wrote (pass the kit's store).

        Without it each process knows only its own writes; with it a user's
        reads stay on the primary everywhere for the read-your-writes window.
        """
        if self.replicas is not None:
            self.replicas.share_writes(channel)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        """A :class:`UnitOfWork`: one transaction, then its ``after_commit`` callbacks.

        Example:
            ```python
            async with database.transaction() as uow:
                uow.session.add(row)
                uow.after_commit(lambda: events.emit("on_thing", id=row.id))
            ```
        """
        async with self.session() as session:
            unit = UnitOfWork(session)
            async with session.begin():
                yield unit
            await unit._committed()

    async def ping(self, timeout: float = 3.0) -> None:
        """Run ``SELECT 1``; raises on failure or after ``timeout`` seconds."""
        async with asyncio.timeout(timeout), self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection (and stop watching the replicas)."""
        if self.replicas is not None:
            await self.replicas.stop()
        await self.engine.dispose()


def _engine_options(url: str, settings: Settings | None, extra: dict[str, Any]) -> dict[str, Any]:
    # No pre-ping by default: it costs a round trip per checkout. A connection
    # found dead is a disconnect error, which invalidates the whole pool at once
    # (that request answers 503, the next one reconnects).
    # Statement parameters never reach logs or exception messages: they carry
    # secrets (webhook signing secrets, token hashes) and personal data.
    options: dict[str, Any] = {"hide_parameters": True}
    if settings is not None:
        options["echo"] = settings.db_echo
    if url.startswith("sqlite"):
        options["connect_args"] = {"timeout": 30}
    elif settings is not None:
        options.update(
            pool_pre_ping=settings.db_pool_pre_ping,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout,
        )
        if url.startswith("postgresql+asyncpg"):
            # The hot statements run prepared: asyncpg's cache serves tenantkit's driver-level
            # statements (rotation, ScopedRead), SQLAlchemy's serves everything through the ORM.
            cache = settings.db_statement_cache_size
            options["connect_args"] = {"statement_cache_size": cache, "prepared_statement_cache_size": cache}
    options.update(extra)
    return options
