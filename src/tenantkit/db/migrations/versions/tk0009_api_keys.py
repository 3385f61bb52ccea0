"""api_keys: tenant-owned service-account keys (keyed digests only), under row-level security

Revision ID: tk0009
Revises: tk0008
Create Date: 2026-12-03 07:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenantkit.db.rls import disable_rls, enable_rls

revision = "tk0009"
down_revision = "tk0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_api_keys_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("tenant_id", "public_id", name=op.f("uq_api_keys_tenant_id_public_id")),
    )
    op.create_index("ix_api_keys_public_id", "api_keys", ["public_id"], unique=False)
    enable_rls(op, "api_keys")


def downgrade() -> None:
    disable_rls(op, "api_keys")
    op.drop_index("ix_api_keys_public_id", table_name="api_keys")
    op.drop_table("api_keys")
