"""files: uploaded objects' metadata (tenant-scoped, row-level security)

Revision ID: tk0002
Revises: tk0001
Create Date: 2026-11-25 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenantkit.tenancy import disable_rls, enable_rls

revision = "tk0002"
down_revision = "tk0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=127), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'uploaded', 'processed', 'rejected')", name=op.f("ck_files_status")
        ),
        sa.CheckConstraint("visibility IN ('private', 'public')", name=op.f("ck_files_visibility")),
        sa.CheckConstraint("size >= 0", name=op.f("ck_files_size")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_files_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_files")),
        sa.UniqueConstraint("tenant_id", "key", name=op.f("uq_files_tenant_id_key")),
    )
    enable_rls(op, "files")


def downgrade() -> None:
    disable_rls(op, "files")
    op.drop_table("files")
