"""``ScopedRead``: one round trip on PostgreSQL, with row-level security as the second wall.

Connected as ``tenantkit_app`` (RLS binds it). The statement sets the tenant
itself, transaction-local, in a subquery its page joins ``LATERAL``: these tests
show that the policies see that tenant (a statement without any tenant filter
returns exactly the tenant's rows, never none and never another's) and that the
setting ends with the statement.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import cast

import pytest
from sqlalchemy import Table, Uuid, bindparam, select, text

from inventory_app.models import Product
from tenantkit import TenantRef, tenant_context
from tenantkit.db import fastpath
from tenantkit.db.engine import Database
from tenantkit.db.rls import APP_ROLE
from tenantkit.errors import TenantScopeError
from tenantkit.tenancy import ScopedRead
from tests.helpers import record_queries

pytestmark = pytest.mark.postgres

PRODUCTS = cast("Table", Product.__table__)


@pytest.fixture
def backend() -> str:
    return "postgres"


def as_user(url: str, user: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}@{rest.split('@', 1)[1]}"


@pytest.fixture
async def tenants(pg_url: str) -> list[uuid.UUID]:
    owner = Database(pg_url)
    ids = [uuid.uuid4() for _ in range(3)]
    async with owner.engine.begin() as connection:
        for n, tenant in enumerate(ids):
            await connection.execute(
                text(
                    "INSERT INTO tenants (id, slug, name, status, open_signup, created_at, updated_at) "
                    "VALUES (:id, :slug, 't', 'active', false, now(), now())"
                ),
                {"id": tenant, "slug": f"t-{tenant.hex[:12]}"},
            )
            await connection.execute(
                text(
                    "INSERT INTO products (tenant_id, id, sku, name, description, price, stock, "
                    "low_stock_threshold, created_at, updated_at) SELECT :tenant, gen_random_uuid(), "
                    "'sku-' || p, 'p', '', 1, 1, 0, now() - p * interval '1 second', now() "
                    "FROM generate_series(1, :count) p"
                ),
                {"tenant": tenant, "count": 5 * (n + 1)},
            )
    await owner.dispose()
    return ids


@pytest.fixture
async def app_db(pg_url: str) -> AsyncIterator[Database]:
    database = Database(as_user(pg_url, APP_ROLE), pool_size=1, max_overflow=0)
    yield database
    await database.dispose()


#: No tenant predicate at all (the bind is only there to satisfy the constructor): RLS alone filters.
RLS_ONLY = ScopedRead(
    select(PRODUCTS.c.tenant_id, PRODUCTS.c.id)
    .where(bindparam("tenant_id", type_=Uuid()).is_not(None))
    .order_by(PRODUCTS.c.created_at)
    .limit(bindparam("limit"))
)
PAGE = ScopedRead(
    select(PRODUCTS.c.tenant_id, PRODUCTS.c.id)
    .where(PRODUCTS.c.tenant_id == bindparam("tenant_id"))
    .order_by(PRODUCTS.c.created_at, PRODUCTS.c.id)
    .limit(bindparam("limit"))
)


async def test_row_level_security_sees_the_tenant_the_statement_sets(
    app_db: Database, tenants: list[uuid.UUID]
) -> None:
    for n, tenant in enumerate(tenants):
        with tenant_context(TenantRef(id=tenant, slug="")):
            rows = await RLS_ONLY.rows(app_db, {"limit": 100})
            page = await PAGE.rows(app_db, {"limit": 3})
        assert len(rows) == 5 * (n + 1)
        assert {row["tenant_id"] for row in rows} == {tenant}
        assert len(page) == 3 and {row["tenant_id"] for row in page} == {tenant}


async def test_the_setting_ends_with_the_statement(app_db: Database, tenants: list[uuid.UUID]) -> None:
    with tenant_context(TenantRef(id=tenants[0], slug="")):
        assert len(await RLS_ONLY.rows(app_db, {"limit": 100})) == 5
    async with app_db.engine.connect() as connection:  # the pool's only connection
        setting = await connection.scalar(text("SELECT current_setting('tenantkit.tenant_id', true)"))
        visible = await connection.scalar(text("SELECT count(*) FROM products"))
    assert not setting
    assert visible == 0


async def test_one_round_trip_and_the_tenant_index(app_db: Database, tenants: list[uuid.UUID]) -> None:
    sql, args = fastpath.driver_args(
        PAGE.postgresql, {"tenant_id": tenants[1], "limit": 3, "tenantkit_rls_tenant": str(tenants[1])}
    )
    async with app_db.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        plan = "\n".join(r[0] for r in await raw.driver_connection.fetch("EXPLAIN " + sql, *args))
    assert "Nested Loop" in plan, plan
    assert "Seq Scan on products" not in plan, plan


async def test_no_tenant_is_refused(app_db: Database) -> None:
    with pytest.raises(TenantScopeError):
        await PAGE.rows(app_db, {"limit": 3})


def test_a_statement_without_the_tenant_parameter_is_refused() -> None:
    with pytest.raises(ValueError, match="tenant_id"):
        ScopedRead(select(PRODUCTS.c.id))


async def test_a_read_sends_one_query(app_db: Database, tenants: list[uuid.UUID]) -> None:
    sent = record_queries(app_db)
    with tenant_context(TenantRef(id=tenants[2], slug="")):
        assert len(await PAGE.rows(app_db, {"limit": 3})) == 3
    await asyncio.sleep(0.05)  # asyncpg's query loggers run through call_soon
    assert [len(queries) for queries in sent.values()] == [1], dict(sent)
    assert "tenantkit_rls" in next(iter(sent.values()))[0]
