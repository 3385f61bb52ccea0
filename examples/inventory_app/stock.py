"""Stock changes: one atomic conditional UPDATE per product, plus a ledger row.

``UPDATE products SET stock = stock + :delta WHERE id = :id AND stock + :delta >= 0``
either applies in full or matches no row, so concurrent orders can never take
stock below zero: on PostgreSQL the row lock serialises writers and the
condition is re-checked against the committed row; SQLite has one writer.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from inventory_app.models import Product, StockMovement
from tenantkit import ConflictError, NotFoundError, TenantKit
from tenantkit.context import current_tenant
from tenantkit.db.base import utcnow
from tenantkit.db.models import Membership, User
from tenantkit.mail import Mail
from tenantkit.rbac.roles import ADMIN

__all__ = ["MAX_STOCK", "StockChange", "apply_delta", "emit_low_stock", "mail_low_stock"]

#: The most stock a product may hold (its column is a 32-bit ``integer``).
MAX_STOCK = 2_000_000_000

logger = logging.getLogger("inventory_app")


@dataclass(frozen=True, slots=True)
class StockChange:
    """What one stock change did."""

    product_id: uuid.UUID
    sku: str
    name: str
    price: Decimal
    delta: int
    stock: int
    low_stock_threshold: int
    movement: StockMovement

    @property
    def crossed_low_stock(self) -> bool:
        """Whether this change took stock from above the threshold to it or below."""
        before = self.stock - self.delta
        return self.delta < 0 and before > self.low_stock_threshold >= self.stock


async def apply_delta(
    session: AsyncSession,
    product_id: uuid.UUID,
    delta: int,
    reason: str,
    *,
    order_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
) -> StockChange:
    """Change a product's stock by ``delta`` and write the ledger row, in ``session``'s transaction.

    Raises:
        NotFoundError: no such product in this brand (404).
        ConflictError: the stock would fall below zero, or rise beyond ``MAX_STOCK``
            (the ``integer`` column); nothing is written (409).
    """
    # ``stock >= -delta`` and ``stock <= MAX_STOCK - delta`` never compute past the column's range.
    statement = (
        update(Product)
        .where(Product.id == product_id, Product.stock >= -delta, Product.stock <= MAX_STOCK - delta)
        .values(stock=Product.stock + delta, updated_at=utcnow())
        .returning(Product.stock, Product.low_stock_threshold, Product.price, Product.sku, Product.name)
        .execution_options(synchronize_session=False)
    )
    row = (await session.execute(statement)).one_or_none()
    if row is None:
        stock = await session.scalar(select(Product.stock).where(Product.id == product_id))
        if stock is None:
            raise NotFoundError(f"Product {product_id} not found.")
        if delta > 0:
            raise ConflictError(f"Stock of product {product_id} cannot exceed {MAX_STOCK}.", available=stock)
        raise ConflictError(
            f"Not enough stock for product {product_id}: {stock} available.",
            product_id=str(product_id),
            available=stock,
        )
    movement = StockMovement(
        id=uuid.uuid4(),
        product_id=product_id,
        delta=delta,
        reason=reason,
        stock_after=row.stock,
        order_id=order_id,
        actor_id=actor_id,
        created_at=utcnow(),
    )
    session.add(movement)
    return StockChange(
        product_id=product_id,
        sku=row.sku,
        name=row.name,
        price=row.price,
        delta=delta,
        stock=row.stock,
        low_stock_threshold=row.low_stock_threshold,
        movement=movement,
    )


async def emit_low_stock(
    kit: TenantKit, session: AsyncSession, changes: list[StockChange]
) -> list[dict[str, Any]]:
    """Queue ``inventory.low_stock`` for every change that crossed its product's threshold.

    Returns the events' data, for :func:`mail_low_stock` once the transaction committed.
    """
    alerts: list[dict[str, Any]] = []
    for change in changes:
        if change.crossed_low_stock:
            data: dict[str, Any] = {
                "product_id": str(change.product_id),
                "sku": change.sku,
                "name": change.name,
                "stock": change.stock,
                "low_stock_threshold": change.low_stock_threshold,
            }
            await kit.webhooks.emit("inventory.low_stock", data, session=session)
            alerts.append(data)
    return alerts


async def mail_low_stock(kit: TenantKit, alerts: list[dict[str, Any]]) -> None:
    """Email every active ADMIN of the current brand about each low-stock alert.

    Call it after the stock change committed. Mail goes through ``kit.send_mail``
    (a queued job with SMTP configured); a failure is logged, never fails the
    change that already happened.
    """
    tenant = current_tenant()
    if not alerts or tenant is None:
        return
    try:
        async with kit.database.session() as session:
            emails = list(
                await session.scalars(
                    select(User.email)
                    .join(Membership, Membership.user_id == User.id)
                    .where(Membership.tenant_id == tenant.id, Membership.role == ADMIN, User.is_active)
                    .order_by(User.email)
                )
            )
        brand = tenant.name or tenant.slug
        for alert in alerts:
            for email in emails:
                await kit.send_mail(
                    Mail(
                        to=email,
                        subject=f"[{brand}] Low stock: {alert['sku']} ({alert['stock']} left)",
                        body=(
                            f"{alert['name']} ({alert['sku']}) is down to {alert['stock']} "
                            f"(threshold {alert['low_stock_threshold']}).\n"
                        ),
                        kind="inventory.low_stock",
                        tags={"tenant_id": str(tenant.id), "product_id": alert["product_id"]},
                    )
                )
    except Exception as exc:
        logger.warning("low-stock mail failed: %s", type(exc).__name__)
