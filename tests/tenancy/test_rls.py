"""PostgreSQL row-level security: the second wall, seen by a plain (non-owner) role."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from tenantkit import TenantRef, tenant_context
from tenantkit.db.engine import Database
from tenantkit.db.rls import CROSS_TENANT_ROLE, rls_statements
from tenantkit.tenancy import unscoped
from tests.tenancy.models import TABLES, Project, create_tables

pytestmark = pytest.mark.postgres


@dataclass
class AppDb:
    """The test database seen by the owner (superuser) and by a plain application role."""

    owner: Database
    app: Database
    role: str


def _with_user(url: str, user: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}@{rest.split('@', 1)[1]}"


@pytest.fixture
async def appdb(pg_url: str) -> AsyncIterator[AppDb]:
    owner = Database(pg_url)
    await create_tables(owner)
    role = f"tk_app_{uuid.uuid4().hex[:10]}"
    tables = ", ".join(f'"{t}"' for t in TABLES)
    async with owner.engine.begin() as connection:
        for table in TABLES:
            for statement in rls_statements(table):
                await connection.execute(text(statement))
        # like tenantkit_app: NOINHERIT member of the cross-tenant role (entered only by unscoped())
        await connection.execute(text(f"CREATE ROLE {role} LOGIN NOINHERIT NOBYPASSRLS NOSUPERUSER"))
        await connection.execute(text(f"GRANT {CROSS_TENANT_ROLE} TO {role}"))
        await connection.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {role}"))
    # one connection only: every transaction reuses the same server session
    app = Database(_with_user(pg_url, role), pool_size=1, max_overflow=0, pool_timeout=10)
    try:
        yield AppDb(owner, app, role)
    finally:
        await app.dispose()
        async with owner.engine.begin() as connection:
            await connection.execute(text(f"DROP OWNED BY {role}"))
            await connection.execute(text(f"DROP ROLE {role}"))
        await owner.dispose()


def _tenant(slug: str) -> TenantRef:
    return TenantRef(id=uuid.uuid4(), slug=slug)


async def _add_projects(db: Database, tenant: TenantRef, *names: str) -> None:
    with tenant_context(tenant):
        async with db.session() as session, session.begin():
            session.add_all(Project(name=name) for name in names)


async def _raw_owners(db: Database) -> list[uuid.UUID]:
    async with db.session() as session:
        rows = await session.scalars(text("SELECT tenant_id FROM tkt_projects ORDER BY name"))
        return list(rows.all())


async def test_the_role_is_plain_and_rls_is_forced(appdb: AppDb) -> None:
    async with appdb.app.engine.connect() as connection:
        flags = (
            await connection.execute(
                text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            )
        ).one()
        forced = (
            await connection.execute(
                text(
                    "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'tkt_projects'"
                )
            )
        ).one()
    assert tuple(flags) == (False, False)
    assert tuple(forced) == (True, True)


async def test_raw_sql_sees_only_the_current_tenant(appdb: AppDb) -> None:
    a, b = _tenant("a"), _tenant("b")
    await _add_projects(appdb.app, a, "a1", "a2")
    await _add_projects(appdb.app, b, "b1")
    with tenant_context(a):
        assert await _raw_owners(appdb.app) == [a.id, a.id]
        async with appdb.app.session() as session:
            # even a predicate naming the other tenant finds nothing
            found = await session.scalar(
                text("SELECT count(*) FROM tkt_projects WHERE tenant_id = :b"), {"b": b.id}
            )
            assert found == 0
            touched = await session.execute(
                text("UPDATE tkt_projects SET name = 'x' WHERE tenant_id = :b"), {"b": b.id}
            )
            assert touched.rowcount == 0  # type: ignore[attr-defined]
            await session.rollback()
    with tenant_context(b):
        assert await _raw_owners(appdb.app) == [b.id]
    # the owner (a superuser here) bypasses RLS: all three rows exist
    async with appdb.owner.engine.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM tkt_projects")) == 3


async def test_no_tenant_sees_zero_rows(appdb: AppDb) -> None:
    await _add_projects(appdb.app, _tenant("a"), "a1")
    with tenant_context(None):
        assert await _raw_owners(appdb.app) == []
        async with appdb.app.session() as session:
            assert await session.scalar(text("SELECT count(*) FROM tkt_projects")) == 0
    # a connection outside tenantkit's session never set the variable at all
    async with appdb.app.engine.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM tkt_projects")) == 0


async def test_unscoped_block_sees_every_tenant(appdb: AppDb) -> None:
    a, b = _tenant("a"), _tenant("b")
    await _add_projects(appdb.app, a, "a1")
    await _add_projects(appdb.app, b, "b1")
    with tenant_context(None), unscoped("test: report across tenants"):
        assert sorted(map(str, await _raw_owners(appdb.app))) == sorted([str(a.id), str(b.id)])
    # the bypass was transaction-local too
    with tenant_context(None):
        assert await _raw_owners(appdb.app) == []


async def test_with_check_refuses_rows_of_another_tenant(appdb: AppDb) -> None:
    a, b = _tenant("a"), _tenant("b")
    await _add_projects(appdb.app, a, "a1")
    with tenant_context(a):
        async with appdb.app.session() as session:
            with pytest.raises(DBAPIError, match="row-level security"):
                await session.execute(
                    text("INSERT INTO tkt_projects (tenant_id, id, name) VALUES (:t, :i, 'smuggled')"),
                    {"t": b.id, "i": uuid.uuid4()},
                )
        async with appdb.app.session() as session:
            with pytest.raises(DBAPIError, match="row-level security"):
                await session.execute(text("UPDATE tkt_projects SET tenant_id = :t"), {"t": b.id})
        async with appdb.app.session() as session, session.begin():
            await session.execute(
                text("INSERT INTO tkt_projects (tenant_id, id, name) VALUES (:t, :i, 'mine')"),
                {"t": a.id, "i": uuid.uuid4()},
            )
    with tenant_context(None):
        async with appdb.app.session() as session:
            with pytest.raises(DBAPIError, match="row-level security"):
                await session.execute(
                    text("INSERT INTO tkt_projects (tenant_id, id, name) VALUES (:t, :i, 'nobody')"),
                    {"t": a.id, "i": uuid.uuid4()},
                )
    async with appdb.owner.engine.connect() as connection:
        names = (await connection.scalars(text("SELECT name FROM tkt_projects ORDER BY name"))).all()
    assert names == ["a1", "mine"]


async def test_the_setting_does_not_leak_to_the_next_transaction(appdb: AppDb) -> None:
    a, b = _tenant("a"), _tenant("b")
    await _add_projects(appdb.app, a, "a1")
    await _add_projects(appdb.app, b, "b1")
    setting = text(
        "SELECT pg_backend_pid(), coalesce(current_setting('tenantkit.tenant_id', true), ''), "
        "coalesce(current_setting('tenantkit.unscoped', true), '')"
    )
    with tenant_context(a):
        async with appdb.app.session() as session:
            pid_a, seen, _ = (await session.execute(setting)).one()
            assert seen == str(a.id)
    # same pooled connection (pool of one), next transaction, nobody set anything
    async with appdb.app.engine.connect() as connection:
        pid, seen, bypass = (await connection.execute(setting)).one()
        assert (pid, seen, bypass) == (pid_a, "", "")
        assert await connection.scalar(text("SELECT count(*) FROM tkt_projects")) == 0
    with tenant_context(b):
        async with appdb.app.session() as session:
            pid_b, seen, _ = (await session.execute(setting)).one()
            assert (pid_b, seen) == (pid_a, str(b.id))
            owners = (await session.scalars(select(Project.tenant_id))).all()
            assert owners == [b.id]


async def test_interleaved_tenants_on_a_small_pool_never_cross(pg_url: str, appdb: AppDb) -> None:
    pool = Database(_with_user(pg_url, appdb.role), pool_size=3, max_overflow=0, pool_timeout=30)
    tenants = [_tenant("a"), _tenant("b")]
    for tenant in tenants:
        await _add_projects(appdb.app, tenant, *(f"{tenant.slug}{i}" for i in range(3)))
    crossings: list[str] = []

    async def request(n: int) -> None:
        tenant = tenants[n % 2]
        with tenant_context(tenant):
            async with pool.session() as session:
                await asyncio.sleep(0)
                raw = set((await session.scalars(text("SELECT tenant_id FROM tkt_projects"))).all())
                await asyncio.sleep(0)
                orm = set((await session.scalars(select(Project.tenant_id))).all())
                current = await session.scalar(text("SELECT current_setting('tenantkit.tenant_id', true)"))
                if raw != {tenant.id} or orm != {tenant.id} or current != str(tenant.id):
                    crossings.append(f"request {n} in {tenant.slug}: raw={raw} orm={orm} setting={current}")

    try:
        await asyncio.gather(*(request(n) for n in range(100)))
    finally:
        await pool.dispose()
    assert crossings == []
