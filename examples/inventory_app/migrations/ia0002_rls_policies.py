"""inventory app: the index-usable RLS policies and the app role's grants

``enable_rls`` creates the roles when missing, grants them these tables and
replaces ia0001's OR-ed policies with tenantkit's current shape, so this
revision does not depend on tenantkit's tk0006.

Revision ID: ia0002
Revises: ia0001
Create Date: 2026-12-01 09:30:00.000000
"""

from __future__ import annotations

from alembic import op

from tenantkit.tenancy import disable_rls, enable_rls

revision = "ia0002"
down_revision = "ia0001"
branch_labels = None
depends_on = None

TABLES = ("products", "stock_movements", "orders", "order_items")

_SETTING = "NULLIF(current_setting('tenantkit.tenant_id', true), '')::uuid"
_BYPASS = "current_setting('tenantkit.unscoped', true) = 'on'"


def upgrade() -> None:
    enable_rls(op, *TABLES)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    disable_rls(op, *TABLES)
    for table in TABLES:  # the ia0001 shape
        op.execute(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
        op.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')
        op.execute(
            f'CREATE POLICY tenantkit_isolation ON "{table}" USING (tenant_id = {_SETTING}) '
            f"WITH CHECK (tenant_id = {_SETTING})"
        )
        op.execute(f'CREATE POLICY tenantkit_unscoped ON "{table}" USING ({_BYPASS}) WITH CHECK ({_BYPASS})')
