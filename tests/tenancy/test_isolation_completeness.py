"""Every tenant-owned table is behind both walls: the ORM's tenant filter and row-level security.

A table with a ``tenant_id`` column is tenant-owned unless it is listed in
:data:`GLOBAL_TABLES` with the reason it must stay readable across tenants.
Adding a tenant-owned model without ``TenantOwned``/``TenantScoped``, or a
migration without ``enable_rls``, fails here.
"""

from __future__ import annotations

import importlib

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tenantkit.db.base import Base, TenantOwned

#: Every module declaring tenantkit's or the example app's models.
MODEL_MODULES = (
    "tenantkit.db.models",
    "tenantkit.files.models",
    "tenantkit.jobs.models",
    "tenantkit.webhooks.models",
    "inventory_app.models",
)

#: Tables with a ``tenant_id`` that stay global, and why.
GLOBAL_TABLES = {
    # A signed-in device is found by its session id (refresh, logout, revocation
    # checks) before any tenant is known, and "log out everywhere" and password
    # changes end a user's sessions in every tenant at once.
    "auth_sessions": "read by session id and by user across tenants",
    # Which tenants a user may enter is asked at login, token refresh and tenant
    # switch, before a tenant is chosen; the row is the user's key to the tenant.
    "memberships": "read by user across tenants to choose and check the tenant",
    # An email domain belongs to at most one tenant's single sign-on; sign-in
    # asks which tenant owns a domain before any tenant is chosen.
    "sso_domains": "one owner per email domain across the platform, read before a tenant is chosen",
}

POLICY = "(tenant_id = (NULLIF(current_setting('tenantkit.tenant_id'::text, true), ''::text))::uuid)"


def _models() -> dict[str, type]:
    for module in MODEL_MODULES:
        importlib.import_module(module)
    return {mapper.local_table.name: mapper.class_ for mapper in Base.registry.mappers}  # type: ignore[union-attr]


def _tenant_tables() -> set[str]:
    _models()
    return {name for name, table in Base.metadata.tables.items() if "tenant_id" in table.columns}


def test_every_table_with_a_tenant_id_is_tenant_scoped_or_a_documented_global() -> None:
    models = _models()
    tenant_tables = _tenant_tables()
    assert set(GLOBAL_TABLES) <= tenant_tables, "a documented global table no longer exists"
    unscoped = sorted(
        name
        for name in tenant_tables - set(GLOBAL_TABLES)
        if name not in models or not issubclass(models[name], TenantOwned)
    )
    assert unscoped == [], f"tenant-owned tables outside the ORM tenant filter: {unscoped}"
    # the ones this work brought inside, by name (a regression would drop them silently)
    assert {"roles", "invitations", "audit_events", "dead_letters"} <= tenant_tables - set(GLOBAL_TABLES)
    # a global table must not be scoped either: the exceptions are real
    assert not any(issubclass(models[name], TenantOwned) for name in GLOBAL_TABLES)


@pytest.mark.postgres
async def test_after_migration_every_tenant_owned_table_has_forced_rls_and_the_two_policies(
    pg_url: str,
) -> None:
    expected = _tenant_tables() - set(GLOBAL_TABLES)
    engine = create_async_engine(pg_url)
    try:
        async with engine.connect() as connection:
            flags = {
                row.relname: (row.relrowsecurity, row.relforcerowsecurity)
                for row in await connection.execute(
                    text(
                        "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                        "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
                    )
                )
            }
            policies: dict[str, dict[str, tuple[list[str], str | None, str | None]]] = {}
            for row in await connection.execute(
                text("SELECT tablename, policyname, roles, qual, with_check FROM pg_policies")
            ):
                policies.setdefault(row.tablename, {})[row.policyname] = (
                    list(row.roles),
                    row.qual,
                    row.with_check,
                )
            privileges = {
                name: await connection.scalar(
                    text("SELECT has_table_privilege('tenantkit_app', :t, 'SELECT, INSERT, UPDATE, DELETE')"),
                    {"t": name},
                )
                for name in expected | set(GLOBAL_TABLES) | {"users", "tenants"}
            }
    finally:
        await engine.dispose()
    missing = sorted(name for name in expected if flags.get(name) != (True, True))
    assert missing == [], f"tenant-owned tables without forced row-level security: {missing}"
    for name in sorted(expected):
        assert policies.get(name) == {
            "tenantkit_isolation": (["public"], POLICY, POLICY),
            "tenantkit_crosstenant": (["tenantkit_crosstenant"], "true", "true"),
        }, name
    assert all(privileges.values()), privileges
    # nothing outside the tenant-owned tables carries a tenantkit policy
    assert set(policies) <= expected
