"""PostgreSQL row-level security for tenant-scoped tables, for use in alembic migrations.

The policy is the plain check SECURITY.md asks for: ``tenant_id`` equals the
transaction-local setting ``tenantkit.tenant_id`` (``NULLIF(..., '')`` so a
never-set and an emptied setting both fail closed). A second policy lets
:func:`tenantkit.tenancy.unscoped` blocks through (``tenantkit.unscoped = 'on'``,
also transaction-local). ``FORCE`` applies the policies to the table owner too;
superusers and ``BYPASSRLS`` roles always bypass RLS, so run the app as a
plain role (see the tenancy docs).
"""

from __future__ import annotations

from typing import Any

__all__ = ["disable_rls", "enable_rls", "rls_statements"]

_SETTING = "NULLIF(current_setting('tenantkit.tenant_id', true), '')::uuid"
_BYPASS = "current_setting('tenantkit.unscoped', true) = 'on'"


def rls_statements(table: str) -> list[str]:
    """The SQL enabling forced RLS with tenantkit's policies on ``table``."""
    return [
        f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY',
        f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY',
        f'CREATE POLICY tenantkit_isolation ON "{table}" USING (tenant_id = {_SETTING}) '
        f"WITH CHECK (tenant_id = {_SETTING})",
        f'CREATE POLICY tenantkit_unscoped ON "{table}" USING ({_BYPASS}) WITH CHECK ({_BYPASS})',
    ]


def enable_rls(op: Any, *tables: str) -> None:
    """In a migration: ``enable_rls(op, "products", "orders")`` (no-op on SQLite)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in tables:
        for statement in rls_statements(table):
            op.execute(statement)


def disable_rls(op: Any, *tables: str) -> None:
    """The downgrade counterpart of :func:`enable_rls`."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in tables:
        op.execute(f'DROP POLICY IF EXISTS tenantkit_unscoped ON "{table}"')
        op.execute(f'DROP POLICY IF EXISTS tenantkit_isolation ON "{table}"')
        op.execute(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY')
        op.execute(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY')
