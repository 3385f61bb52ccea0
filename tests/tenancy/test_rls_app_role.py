"""Row-level security as the deployment runs it: connected as ``tenantkit_app``.

Migrations run as ``postgres`` (a superuser, which RLS never binds); everything
here then connects as the application role the migrations created.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import text

from tenantkit import Settings, TenantKit, TenantRef, tenant_context
from tenantkit.audit.log import AuditLog, AuditQuery
from tenantkit.db.engine import Database
from tenantkit.db.models import Role, Tenant
from tenantkit.db.rls import APP_ROLE, CROSS_TENANT_ROLE, check_rls_enforced, rls_problems
from tenantkit.errors import ConfigurationError
from tenantkit.jobs.models import NIL_TENANT, DeadLetter
from tenantkit.jobs.runner import ALL_TENANTS
from tenantkit.tenancy import unscoped

pytestmark = pytest.mark.postgres


def as_user(url: str, user: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}@{rest.split('@', 1)[1]}"


@pytest.fixture
def backend() -> str:
    return "postgres"


@pytest.fixture
async def owner(pg_url: str) -> AsyncIterator[Database]:
    database = Database(pg_url)
    yield database
    await database.dispose()


@pytest.fixture
async def app_db(pg_url: str) -> AsyncIterator[Database]:
    database = Database(as_user(pg_url, APP_ROLE))
    yield database
    await database.dispose()


async def _tenants(owner: Database, count: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    async with owner.session() as session, session.begin():
        session.add_all(Tenant(id=i, slug=f"t-{i.hex[:12]}", name="t") for i in ids)
    return ids


async def test_the_app_role_is_plain_noinherit_and_owns_nothing(app_db: Database) -> None:
    async with app_db.engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT rolsuper, rolbypassrls, rolinherit, rolcanlogin, "
                    "pg_has_role(current_user, :cross, 'MEMBER'), "
                    "(SELECT count(*) FROM pg_class WHERE relowner = r.oid) "
                    "FROM pg_roles r WHERE rolname = current_user"
                ),
                {"cross": CROSS_TENANT_ROLE},
            )
        ).one()
    assert tuple(row) == (False, False, False, True, True, 0)
    assert await rls_problems(app_db) == []


async def test_production_refuses_a_superuser_and_starts_as_the_app_role(
    pg_url: str, settings_factory: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    superuser = TenantKit(settings_factory(env="production"))
    try:
        with pytest.raises(ConfigurationError, match="superuser"):
            await superuser.startup()
    finally:
        await superuser.shutdown()
        await superuser.database.dispose()
    # development (and tests): the same connection starts; development warns
    dev = TenantKit(settings_factory(env="development"))
    await dev.startup()
    await dev.shutdown()
    tenancy_logger = logging.getLogger("tenantkit.tenancy")  # the kit's logging does not propagate
    tenancy_logger.addHandler(caplog.handler)
    try:
        await check_rls_enforced(superuser.database, "development")
    finally:
        tenancy_logger.removeHandler(caplog.handler)
    assert any("superuser" in record.getMessage() for record in caplog.records)
    app = TenantKit(settings_factory(env="production", database_url=as_user(pg_url, APP_ROLE)))
    await app.startup()
    await app.shutdown()


async def test_an_owner_without_force_is_a_bypass(owner: Database, pg_url: str) -> None:
    role = f"tk_owner_{uuid.uuid4().hex[:8]}"
    async with owner.engine.begin() as connection:
        await connection.execute(text(f"CREATE ROLE {role} LOGIN NOINHERIT"))
        await connection.execute(text(f"CREATE TABLE {role}_t (tenant_id uuid) "))
        await connection.execute(text(f"ALTER TABLE {role}_t OWNER TO {role}"))
        await connection.execute(text(f"ALTER TABLE {role}_t ENABLE ROW LEVEL SECURITY"))
    database = Database(as_user(pg_url, role))
    try:
        problems = await rls_problems(database)
        assert problems == [f"the database role '{role}' owns table '{role}_t' and its RLS is not forced"]
        async with owner.engine.begin() as connection:
            await connection.execute(text(f"ALTER TABLE {role}_t FORCE ROW LEVEL SECURITY"))
        assert await rls_problems(database) == []
        # a tenant-owned table without RLS is a bypass as well
        assert await rls_problems(database, ["roles"]) == []
        async with owner.engine.begin() as connection:
            await connection.execute(text("ALTER TABLE roles DISABLE ROW LEVEL SECURITY"))
        assert await rls_problems(database, ["roles"]) == [
            "table 'roles' is tenant-owned but has no row-level security"
        ]
    finally:
        await database.dispose()
        async with owner.engine.begin() as connection:
            await connection.execute(text(f"DROP OWNED BY {role}"))
            await connection.execute(text(f"DROP ROLE {role}"))


async def test_an_rls_only_query_uses_the_tenant_index(owner: Database, app_db: Database) -> None:
    started = time.monotonic()
    async with owner.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO tenants (id, slug, name, status, open_signup, created_at, updated_at) "
                "SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(t), 12, '0'))::uuid, 'big-' || t, 'big', "
                "'active', false, now(), now() FROM generate_series(1, 2000) t"
            )
        )
        await connection.execute(
            text(
                "INSERT INTO products (tenant_id, id, sku, name, description, price, stock, "
                "low_stock_threshold, created_at, updated_at) "
                "SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(t), 12, '0'))::uuid, gen_random_uuid(), "
                "'sku-' || p, 'p', '', 1, 1, 0, now() - p * interval '1 second', now() "
                "FROM generate_series(1, 2000) t, generate_series(1, 100) p"
            )
        )
    async with owner.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("ANALYZE products"))
    tenant = TenantRef(id=uuid.UUID("00000000-0000-4000-8000-000000000007"), slug="big-7")
    query = "SELECT * FROM products ORDER BY created_at LIMIT 20"  # no tenant predicate at all
    with tenant_context(tenant):
        async with app_db.session() as session:
            plan = "\n".join((await session.scalars(text(f"EXPLAIN {query}"))).all())
            rows = (await session.execute(text(query))).all()
            count = await session.scalar(text("SELECT count(*) FROM products"))
    assert "Index Scan using ix_products_tenant_id_created_at_id" in plan, plan
    assert "Seq Scan" not in plan, plan
    assert "Index Cond: (tenant_id = " in plan, plan
    assert len(rows) == 20 and {r.tenant_id for r in rows} == {tenant.id}
    assert count == 100
    # the cross-tenant escape is a role of its own: unscoped() sees every row
    with unscoped("test: count across tenants"):
        async with app_db.session() as session:
            assert await session.scalar(text("SELECT count(*) FROM products")) == 200_000
            assert await session.scalar(text("SELECT current_user")) == CROSS_TENANT_ROLE
    # ...only inside its transaction
    with tenant_context(tenant):
        async with app_db.session() as session:
            assert await session.scalar(text("SELECT current_user")) == APP_ROLE
            assert await session.scalar(text("SELECT count(*) FROM products")) == 100
    assert time.monotonic() - started < 20


async def test_audit_batch_of_many_tenants_is_written_and_read_as_the_app_role(
    owner: Database, app_db: Database
) -> None:
    a, b = await _tenants(owner, 2)
    log = AuditLog(app_db, batch_size=50)
    for n in range(6):
        log.record({"action": "thing.done", "tenant_id": (a, b, None)[n % 3], "target": str(n)})
    assert await log.flush() == 6  # one transaction holding three tenants' rows, WITH CHECK held
    async with owner.engine.connect() as connection:
        counts = dict(
            (await connection.execute(text("SELECT tenant_id, count(*) FROM audit_events GROUP BY 1"))).all()
        )
    assert counts == {a: 2, b: 2, NIL_TENANT: 2}
    # reading one tenant's log from inside another tenant's request still reads that tenant's
    with tenant_context(TenantRef(id=b, slug="b")):
        items, _ = await log.query(AuditQuery(a))
    assert sorted(i["target"] for i in items) == ["0", "3"]
    platform, _ = await log.query(AuditQuery(None))
    assert sorted(i["target"] for i in platform) == ["2", "5"]


@pytest.fixture
async def app_kit(pg_url: str, settings_factory: Callable[..., Settings]) -> AsyncIterator[TenantKit]:
    kit = TenantKit(settings_factory(database_url=as_user(pg_url, APP_ROLE)))
    await kit.startup()
    yield kit
    await kit.shutdown()


async def test_roles_and_dead_letters_work_as_the_app_role(owner: Database, app_kit: TenantKit) -> None:
    a, b = await _tenants(owner, 2)
    rows: list[Any] = []
    for tenant_id in (a, b):
        with tenant_context(TenantRef(id=tenant_id, slug="x")):
            async with owner.session() as session, session.begin():
                session.add(Role(name="auditor", permissions=["audit.read"]))
                row = DeadLetter(task_name="tenantkit.send_mail", error="E", attempts=5)
                session.add(row)
                rows.append(row)
    # the role book reads a tenant's custom role whatever tenant the caller is in
    with tenant_context(TenantRef(id=b, slug="b")):
        assert await app_kit.roles.permissions(a, "auditor") == frozenset({"audit.read"})
    # an operator's listing crosses tenants (the cross-tenant role); a tenant's stays in it
    every, _ = await app_kit.jobs.dead_letters(tenant_id=ALL_TENANTS)
    assert {r.tenant_id for r in every} == {a, b}
    only_a, _ = await app_kit.jobs.dead_letters(tenant_id=a)
    assert [r.id for r in only_a] == [rows[0].id]
    found = await app_kit.jobs.dead_letter(rows[1].id)
    assert found is not None and found.tenant_id == b
