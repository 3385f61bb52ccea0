"""auth_sessions: impersonator_id, impersonation_reason, read_only (audited impersonation sessions)

Revision ID: tk0010
Revises: tk0009
Create Date: 2026-12-03 07:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "tk0010"
down_revision = "tk0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("impersonator_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("impersonation_reason", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("read_only", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.drop_column("read_only")
        batch_op.drop_column("impersonation_reason")
        batch_op.drop_column("impersonator_id")
