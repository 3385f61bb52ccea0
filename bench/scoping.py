"""Per-query cost of tenant scoping: a SELECT by primary key, scoped against unscoped.

Each query runs in its own tenantkit session (as a request would), on one
model with a few hundred rows per tenant:

- plain: a session without tenantkit's listeners (what an app without
  tenantkit pays);
- unscoped: tenantkit's session inside ``unscoped()`` (listeners run, add nothing);
- scoped: tenantkit's session in a tenant (statement inspection, the
  ``with_loader_criteria`` option, and on PostgreSQL the transaction-local
  ``set_config`` for row-level security).

SQLite always; PostgreSQL when 127.0.0.1:5432 answers (a throw-away database
is created and dropped). Target: scoped ≤ 1.3× plain on SQLite.

Run: ``python -m bench.scoping`` (``TENANTKIT_BENCH_QUICK=1`` for a short run).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, String, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bench.common import figure, headline, line, per_request_us, target_text, write_result
from tenantkit.context import TenantRef, tenant_context
from tenantkit.db.engine import Database
from tenantkit.tenancy import TenantScoped, unscoped

TARGET = 1.3
ROWS_PER_TENANT = 200
PG_ADMIN = os.environ.get("TENANTKIT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


class BenchBase(DeclarativeBase):
    metadata = MetaData()


class Widget(TenantScoped, BenchBase):
    __tablename__ = "bench_widgets"

    name: Mapped[str] = mapped_column(String(100))


async def _seed(database: Database, tenants: list[TenantRef]) -> list[tuple[TenantRef, uuid.UUID]]:
    async with database.engine.begin() as connection:
        await connection.run_sync(BenchBase.metadata.create_all)
    keys: list[tuple[TenantRef, uuid.UUID]] = []
    for tenant in tenants:
        with tenant_context(tenant):
            async with database.session() as session, session.begin():
                widgets = [Widget(name=f"{tenant.slug}-{i}") for i in range(ROWS_PER_TENANT)]
                session.add_all(widgets)
                await session.flush()
                keys.extend((tenant, w.id) for w in widgets)
    return keys


def _driver(
    factory: Callable[[], AsyncSession], keys: list[tuple[TenantRef, uuid.UUID]], mode: str
) -> Callable[[], Awaitable[int]]:
    rng = random.Random(7)

    async def query(tenant: TenantRef, key: uuid.UUID) -> int:
        async with factory() as session:
            found = await session.scalar(
                select(Widget).where(Widget.tenant_id == tenant.id, Widget.id == key)
            )
        return 200 if found is not None else 404

    async def one() -> int:
        tenant, key = keys[rng.randrange(len(keys))]
        if mode == "scoped":
            with tenant_context(tenant):
                return await query(tenant, key)
        if mode == "unscoped":
            with unscoped("benchmark", system=True):
                return await query(tenant, key)
        return await query(tenant, key)

    return one


async def measure(database: Database) -> dict[str, float]:
    tenants = [TenantRef(id=uuid.uuid4(), slug=f"t{i}") for i in range(2)]
    keys = await _seed(database, tenants)
    plain = async_sessionmaker(database.engine, expire_on_commit=False)  # no tenantkit listeners
    results = {}
    for mode, factory in (
        ("plain", plain),
        ("unscoped", database.sessionmaker),
        ("scoped", database.sessionmaker),
    ):
        results[f"{mode}_us"] = await per_request_us(_driver(factory, keys, mode), n=2000, rounds=5)
    results["scoped_ratio"] = results["scoped_us"] / results["plain_us"]
    results["scoped_vs_unscoped_ratio"] = results["scoped_us"] / results["unscoped_us"]
    results["scoping_overhead_us"] = results["scoped_us"] - results["plain_us"]
    return results


def _pg_reachable() -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", 5432)) == 0


@contextlib.asynccontextmanager
async def _pg_database() -> AsyncIterator[Database]:
    import asyncpg

    name = f"tk_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    database = Database(f"{base}/{name}", pool_size=2, max_overflow=0)
    try:
        yield database
    finally:
        await database.dispose()
        admin = await asyncpg.connect(PG_ADMIN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def main() -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        database = Database(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}")
        try:
            results["sqlite"] = await measure(database)
        finally:
            await database.dispose()
    if _pg_reachable():
        async with _pg_database() as database:
            results["postgresql"] = await measure(database)
    return results


def run() -> dict[str, Any]:
    results = asyncio.run(main())
    series = []
    print("per-query cost of tenant scoping: SELECT by primary key, one session per query (median of rounds)")
    for backend, figures in results.items():
        plain = figures["plain_us"]
        print(f" {backend}")
        line("plain session (no tenantkit listeners)", plain, "µs", ratio=1.0)
        line(
            "tenantkit session, unscoped()",
            figures["unscoped_us"],
            "µs",
            ratio=figures["unscoped_us"] / plain,
        )
        note = target_text("<=", TARGET) if backend == "sqlite" else ""
        line(
            "tenantkit session, scoped", figures["scoped_us"], "µs", ratio=figures["scoped_ratio"], note=note
        )
        line("  -> scoping overhead per query", figures["scoping_overhead_us"], "µs")
        series += [
            figure(f"{backend}: plain", plain, "µs"),
            figure(f"{backend}: unscoped()", figures["unscoped_us"], "µs"),
            figure(f"{backend}: scoped", figures["scoped_us"], "µs"),
        ]
    head = headline("scoped / plain SELECT by key (SQLite)", results["sqlite"]["scoped_ratio"], "<=", TARGET)
    print(f"  -> {write_result('scoping', results, series=series, head=head)}")
    return results


if __name__ == "__main__":
    run()
