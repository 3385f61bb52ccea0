"""inventory app: products, stock ledger, orders (tenant-scoped, row-level security)

Revision ID: ia0001
Revises:
Create Date: 2026-11-25 10:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenantkit.tenancy import disable_rls, enable_rls

revision = "ia0001"
down_revision = None
branch_labels = ("inventory_app",)
depends_on = "tk0001"

TABLES = ("products", "stock_movements", "orders", "order_items")


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("price", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("low_stock_threshold", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("stock >= 0", name=op.f("ck_products_stock")),
        sa.CheckConstraint("price >= 0", name=op.f("ck_products_price")),
        sa.CheckConstraint("low_stock_threshold >= 0", name=op.f("ck_products_low_stock_threshold")),
        _tenant_fk("products"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_products")),
        sa.UniqueConstraint("tenant_id", "sku", name=op.f("uq_products_tenant_id_sku")),
    )
    op.create_index("ix_products_tenant_id_created_at_id", "products", ["tenant_id", "created_at", "id"])

    op.create_table(
        "stock_movements",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("stock_after", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("delta <> 0", name=op.f("ck_stock_movements_delta")),
        sa.CheckConstraint("stock_after >= 0", name=op.f("ck_stock_movements_stock_after")),
        _tenant_fk("stock_movements"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "product_id"],
            ["products.tenant_id", "products.id"],
            name=op.f("fk_stock_movements_tenant_id_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_stock_movements")),
    )
    op.create_index("ix_stock_movements_tenant_id_product_id", "stock_movements", ["tenant_id", "product_id"])

    op.create_table(
        "orders",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("total >= 0", name=op.f("ck_orders_total")),
        _tenant_fk("orders"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_orders")),
    )
    op.create_index("ix_orders_tenant_id_created_at_id", "orders", ["tenant_id", "created_at", "id"])

    op.create_table(
        "order_items",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.CheckConstraint("quantity >= 1", name=op.f("ck_order_items_quantity")),
        _tenant_fk("order_items"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "order_id"],
            ["orders.tenant_id", "orders.id"],
            name=op.f("fk_order_items_tenant_id_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_order_items")),
        sa.UniqueConstraint(
            "tenant_id", "order_id", "product_id", name=op.f("uq_order_items_tenant_id_order_id_product_id")
        ),
    )

    enable_rls(op, *TABLES)


def downgrade() -> None:
    disable_rls(op, *TABLES)
    op.drop_table("order_items")
    op.drop_index("ix_orders_tenant_id_created_at_id", table_name="orders")
    op.drop_table("orders")
    op.drop_index("ix_stock_movements_tenant_id_product_id", table_name="stock_movements")
    op.drop_table("stock_movements")
    op.drop_index("ix_products_tenant_id_created_at_id", table_name="products")
    op.drop_table("products")
