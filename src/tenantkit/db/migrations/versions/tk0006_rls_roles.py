"""rls roles: an application role that RLS binds, one index-usable policy per tenant table

Creates ``tenantkit_app`` (LOGIN NOINHERIT NOBYPASSRLS, owns nothing; password from
``$TENANTKIT_APP_DB_PASSWORD`` when set) and ``tenantkit_crosstenant`` (NOLOGIN,
granted to the app role, entered by ``unscoped()`` transactions with SET LOCAL
ROLE), grants them DML on every table (and on later ones: default privileges),
and puts every tenant-owned table under forced RLS with the plain policy
``tenant_id = NULLIF(current_setting('tenantkit.tenant_id', true), '')::uuid``
plus ``USING (true)`` for ``tenantkit_crosstenant`` only. Replaces the earlier
OR-ed ``tenantkit_unscoped`` policy, which no index could serve.

Revision ID: tk0006
Revises: tk0004
Create Date: 2026-12-01 09:00:00.000000
"""

from __future__ import annotations

from alembic import op

from tenantkit.db.rls import create_roles, disable_rls, enable_rls, grant_app_role, set_app_password

revision = "tk0006"
# The lead re-chains this to "tk0005" (invitations revoked) at merge.
down_revision = "tk0005"
branch_labels = None
depends_on = None

#: Already under RLS before this revision (their policies are replaced).
SECURED = ("files", "webhook_endpoints", "webhook_deliveries", "webhook_attempts")
#: Tenant-owned tables that were outside RLS until now.
NEWLY_SECURED = ("roles", "invitations", "audit_events", "dead_letters")

_OLD_SETTING = "NULLIF(current_setting('tenantkit.tenant_id', true), '')::uuid"
_OLD_BYPASS = "current_setting('tenantkit.unscoped', true) = 'on'"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    create_roles(op)
    grant_app_role(op)
    enable_rls(op, *SECURED, *NEWLY_SECURED)
    set_app_password(op)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    disable_rls(op, *NEWLY_SECURED, *SECURED)
    for table in SECURED:  # the pre-tk0006 shape
        op.execute(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
        op.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')
        op.execute(
            f'CREATE POLICY tenantkit_isolation ON "{table}" USING (tenant_id = {_OLD_SETTING}) '
            f"WITH CHECK (tenant_id = {_OLD_SETTING})"
        )
        op.execute(
            f'CREATE POLICY tenantkit_unscoped ON "{table}" USING ({_OLD_BYPASS}) WITH CHECK ({_OLD_BYPASS})'
        )
    # The roles are cluster-wide (other databases may use them): they stay.
