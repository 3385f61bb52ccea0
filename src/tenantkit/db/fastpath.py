"""Run a hot path's few Core statements with as little per-call work as possible.

On PostgreSQL each statement is compiled once for asyncpg and executed on the
driver connection inside one driver transaction (asyncpg keeps the prepared
statement per connection), skipping SQLAlchemy's per-execution machinery. On
other dialects the statements run through SQLAlchemy Core. Only for statements
on global tables: nothing here applies tenant scoping.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy.sql import Executable

from tenantkit.db.engine import Database
from tenantkit.errors import ServiceUnavailableError

__all__ = ["FastStatement", "Runner", "driver_args", "fetchrow", "lost_connection", "transaction"]


class FastStatement:
    """A Core statement, optionally with a dialect-specific variant, compiled once per dialect.

    Args:
        statement: The portable statement.
        variants: Dialect name → a statement to use there instead.
        column_keys: For an ``INSERT``: the columns the parameters name.
    """

    def __init__(
        self,
        statement: Executable,
        *,
        variants: Mapping[str, Executable] | None = None,
        column_keys: Sequence[str] | None = None,
    ) -> None:
        self.statement = statement
        self.variants = dict(variants or {})
        self.column_keys = list(column_keys) if column_keys else None
        self._asyncpg: tuple[str, tuple[str, ...], dict[str, Any]] | None = None

    def for_dialect(self, name: str) -> Executable:
        return self.variants.get(name, self.statement)

    def asyncpg(self) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        """SQL text, parameter order and literal values for asyncpg (compiled once)."""
        if self._asyncpg is None:
            from sqlalchemy.dialects.postgresql.asyncpg import dialect

            compiled = self.for_dialect("postgresql").compile(  # type: ignore[attr-defined]
                dialect=dialect(),  # type: ignore[no-untyped-call]
                column_keys=self.column_keys,
            )
            literals = {name: bind.value for name, bind in compiled.binds.items()}
            self._asyncpg = (str(compiled), tuple(compiled.positiontup or ()), literals)
        return self._asyncpg


class Runner(Protocol):
    """Executes :class:`FastStatement` objects inside one transaction."""

    async def fetchrow(self, statement: FastStatement, params: Mapping[str, Any]) -> Sequence[Any] | None:
        """The first row the statement returns, or ``None``."""

    async def execute(self, statement: FastStatement, params: Mapping[str, Any]) -> None:
        """Run the statement."""


def driver_args(statement: FastStatement, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """The asyncpg SQL text and positional arguments of ``statement`` with ``params``."""
    sql, order, literals = statement.asyncpg()
    return sql, [params[name] if name in params else literals[name] for name in order]


class _DriverRunner:
    def __init__(self, connection: Any) -> None:
        self.connection = connection

    @staticmethod
    def _args(statement: FastStatement, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        return driver_args(statement, params)

    async def fetchrow(self, statement: FastStatement, params: Mapping[str, Any]) -> Sequence[Any] | None:
        sql, args = self._args(statement, params)
        row = await self.connection.fetchrow(sql, *args)
        return tuple(row) if row is not None else None

    async def execute(self, statement: FastStatement, params: Mapping[str, Any]) -> None:
        sql, args = self._args(statement, params)
        await self.connection.execute(sql, *args)


class _CoreRunner:
    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def fetchrow(self, statement: FastStatement, params: Mapping[str, Any]) -> Sequence[Any] | None:
        result = await self.connection.execute(statement.for_dialect(self.connection.dialect.name), params)
        return result.first()  # type: ignore[no-any-return]

    async def execute(self, statement: FastStatement, params: Mapping[str, Any]) -> None:
        await self.connection.execute(statement.for_dialect(self.connection.dialect.name), params)


_LOST_CONNECTION: tuple[type[BaseException], ...] | None = None


def lost_connection() -> tuple[type[BaseException], ...]:
    """The driver errors that mean the connection is gone (invalidate it; answer 503)."""
    global _LOST_CONNECTION
    if _LOST_CONNECTION is None:
        import asyncpg  # type: ignore[import-untyped]

        _LOST_CONNECTION = (
            asyncpg.InterfaceError,  # the connection is gone
            asyncpg.exceptions.PostgresConnectionError,
            asyncpg.exceptions.OperatorInterventionError,  # server shutting down or restarting
            OSError,
        )
    return _LOST_CONNECTION


async def fetchrow(
    database: Database, statement: FastStatement, params: Mapping[str, Any]
) -> Sequence[Any] | None:
    """Run one statement on its own (atomic by itself) and return its first row, or ``None``.

    On PostgreSQL this is one round trip: no ``BEGIN``/``COMMIT`` around it, the
    statement prepared once per connection by asyncpg.
    """
    if database.dialect != "postgresql":
        async with database.engine.begin() as connection:
            return await _CoreRunner(connection).fetchrow(statement, params)
    async with database.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        try:
            return await _DriverRunner(raw.driver_connection).fetchrow(statement, params)
        except lost_connection() as exc:
            await connection.invalidate(exc)  # never hand this connection out again
            raise ServiceUnavailableError("The database is unavailable; try again shortly.") from exc


@contextlib.asynccontextmanager
async def transaction(database: Database) -> AsyncIterator[Runner]:
    """One transaction for a few :class:`FastStatement` executions (committed on success)."""
    if database.dialect != "postgresql":
        async with database.engine.begin() as connection:
            yield _CoreRunner(connection)
        return
    async with database.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        try:
            async with driver.transaction():
                yield _DriverRunner(driver)
        except lost_connection() as exc:
            await connection.invalidate(exc)  # never hand this connection out again
            raise ServiceUnavailableError("The database is unavailable; try again shortly.") from exc
