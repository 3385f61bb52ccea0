"""The inventory app's tables: products, the stock ledger, orders and their lines.

Every table is tenant-scoped (a brand is a tenant) and follows tenantkit's
Citus rule: the primary key is ``(tenant_id, id)`` and ``tenant_id`` leads
every unique constraint, foreign key and index.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, Numeric, String, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

import tenantkit.db.models  # noqa: F401  (the ``tenants`` table the foreign keys point to)
from tenantkit import Base
from tenantkit.db.base import utcnow
from tenantkit.db.scoping import TenantScoped

__all__ = ["CENT", "DEFAULT_LOW_STOCK_THRESHOLD", "Money", "Order", "OrderItem", "Product", "StockMovement"]

CENT = Decimal("0.01")
DEFAULT_LOW_STOCK_THRESHOLD = 5


class Money(TypeDecorator[Decimal]):
    """``NUMERIC(12, 2)`` read back as ``Decimal`` on every backend.

    PostgreSQL keeps exact decimals. SQLite has no decimal type: values travel
    as floats (exact enough for 12 significant digits) and are quantized to
    cents on the way out, without SQLAlchemy's lossy-decimal warning.
    """

    impl = Numeric(12, 2)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Numeric(12, 2, asdecimal=False))
        return dialect.type_descriptor(Numeric(12, 2))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value).quantize(CENT)
        return float(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(str(value)).quantize(CENT)


class Product(TenantScoped, Base):
    """A product of a brand. ``stock`` changes only through the ledger.

    Attributes:
        sku: Stock-keeping unit, unique within the brand.
        name: Display name.
        description: Free text.
        price: Unit price.
        stock: Units on hand, never negative.
        low_stock_threshold: ``inventory.low_stock`` fires when stock falls to it or below.
    """

    __tablename__ = "products"

    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(2000), default="")
    price: Mapped[Decimal] = mapped_column(Money())
    stock: Mapped[int] = mapped_column(default=0)
    low_stock_threshold: Mapped[int] = mapped_column(default=DEFAULT_LOW_STOCK_THRESHOLD)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        UniqueConstraint("tenant_id", "sku"),
        CheckConstraint("stock >= 0", name="stock"),
        CheckConstraint("price >= 0", name="price"),
        CheckConstraint("low_stock_threshold >= 0", name="low_stock_threshold"),
        Index("ix_products_tenant_id_created_at_id", "tenant_id", "created_at", "id"),
    )

    def __repr__(self) -> str:
        return f"Product(id={self.id!s}, sku={self.sku!r}, stock={self.stock!r})"


class StockMovement(TenantScoped, Base):
    """One change of a product's stock; the ledger sums to ``Product.stock``.

    Attributes:
        product_id: The product whose stock changed (same brand).
        delta: Units added (positive) or removed (negative).
        reason: Why (``"order"`` for order reservations).
        stock_after: The product's stock right after this movement.
        order_id: The order that caused it, if any.
        actor_id: The user who caused it, if known.
    """

    __tablename__ = "stock_movements"

    product_id: Mapped[uuid.UUID]
    delta: Mapped[int]
    reason: Mapped[str] = mapped_column(String(200))
    stock_after: Mapped[int]
    order_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(
            ["tenant_id", "product_id"], ["products.tenant_id", "products.id"], ondelete="CASCADE"
        ),
        CheckConstraint("delta <> 0", name="delta"),
        CheckConstraint("stock_after >= 0", name="stock_after"),
        Index("ix_stock_movements_tenant_id_product_id", "tenant_id", "product_id"),
    )


class Order(TenantScoped, Base):
    """An order; its lines are :class:`OrderItem` rows.

    Attributes:
        status: ``"confirmed"`` once stock is reserved.
        total: Sum of the lines' ``unit_price * quantity``.
        user_id: Who placed it.
    """

    __tablename__ = "orders"

    status: Mapped[str] = mapped_column(String(16), default="confirmed")
    total: Mapped[Decimal] = mapped_column(Money())
    user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        CheckConstraint("total >= 0", name="total"),
        Index("ix_orders_tenant_id_created_at_id", "tenant_id", "created_at", "id"),
    )


class OrderItem(TenantScoped, Base):
    """One line of an order, with a snapshot of the product at order time.

    ``product_id`` deliberately has no foreign key: deleting a product keeps
    the orders that sold it.
    """

    __tablename__ = "order_items"

    order_id: Mapped[uuid.UUID]
    product_id: Mapped[uuid.UUID]
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int]
    unit_price: Mapped[Decimal] = mapped_column(Money())

    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(
            ["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"], ondelete="CASCADE"
        ),
        UniqueConstraint("tenant_id", "order_id", "product_id"),
        CheckConstraint("quantity >= 1", name="quantity"),
    )
