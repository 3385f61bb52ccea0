"""federated identity: users.email_verified_at, user_identities, tenant_sso, sso_domains, scim_*

Revision ID: tk0011
Revises: tk0010
Create Date: 2026-12-03 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenantkit.db.rls import disable_rls, enable_rls

revision = "tk0011"
down_revision = "tk0010"
branch_labels = None
depends_on = None

_TENANT_TABLES = ("tenant_sso", "scim_tokens", "scim_users")


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"), ondelete="CASCADE"
    )


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE"
    )


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_verified_at", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "user_identities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=100), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        _user_fk("user_identities"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_identities")),
        sa.UniqueConstraint("issuer", "subject", name=op.f("uq_user_identities_issuer_subject")),
    )
    op.create_index("ix_user_identities_user_id", "user_identities", ["user_id"], unique=False)

    op.create_table(
        "tenant_sso",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("protocol", sa.String(length=16), nullable=False),
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("client_id", sa.String(length=500), nullable=False),
        sa.Column("client_secret_sealed", sa.LargeBinary(length=1024), nullable=False),
        sa.Column("domains", sa.JSON(), nullable=False),
        sa.Column("enforce", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _tenant_fk("tenant_sso"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_sso")),
    )

    op.create_table(
        "sso_domains",
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        _tenant_fk("sso_domains"),
        sa.PrimaryKeyConstraint("domain", name=op.f("pk_sso_domains")),
    )
    op.create_index("ix_sso_domains_tenant_id", "sso_domains", ["tenant_id"], unique=False)

    op.create_table(
        "scim_tokens",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        _tenant_fk("scim_tokens"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_scim_tokens")),
        sa.UniqueConstraint("tenant_id", "public_id", name=op.f("uq_scim_tokens_tenant_id_public_id")),
    )
    op.create_index("ix_scim_tokens_public_id", "scim_tokens", ["public_id"], unique=False)

    op.create_table(
        "scim_users",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("external_id", sa.String(length=500), nullable=True),
        sa.Column("display_name", sa.String(length=500), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _tenant_fk("scim_users"),
        _user_fk("scim_users"),
        sa.PrimaryKeyConstraint("tenant_id", "user_id", name=op.f("pk_scim_users")),
    )
    enable_rls(op, *_TENANT_TABLES)


def downgrade() -> None:
    disable_rls(op, *_TENANT_TABLES)
    op.drop_table("scim_users")
    op.drop_index("ix_scim_tokens_public_id", table_name="scim_tokens")
    op.drop_table("scim_tokens")
    op.drop_index("ix_sso_domains_tenant_id", table_name="sso_domains")
    op.drop_table("sso_domains")
    op.drop_table("tenant_sso")
    op.drop_index("ix_user_identities_user_id", table_name="user_identities")
    op.drop_table("user_identities")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("email_verified_at")
