"""``/orders``: placing orders reserves stock atomically."""

from __future__ import annotations

import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from inventory_app.models import Order, OrderItem
from inventory_app.routes.common import iso, kit_of, money, paginate, parse_query, path_id, principal_id
from inventory_app.schemas import MAX_MONEY, ListQuery, OrderIn, OrderList, OrderOut
from inventory_app.stock import apply_delta, emit_low_stock, mail_low_stock
from tenantkit import NotFoundError, ValidationError, json_response, parse_body
from tenantkit.db.base import utcnow
from tenantkit.openapi import describe
from tenantkit.rbac import requires_permissions
from tenantkit.tenancy import scoped_get

__all__ = ["create_order", "get_order", "list_orders", "order_to_dict"]

TAGS = ["orders"]
CONFIRMED = "confirmed"


def order_to_dict(order: Order, items: list[OrderItem]) -> dict[str, Any]:
    """The JSON shape of an order with its lines."""
    return {
        "id": str(order.id),
        "status": order.status,
        "items": [
            {
                "product_id": str(item.product_id),
                "sku": item.sku,
                "name": item.name,
                "quantity": item.quantity,
                "unit_price": money(item.unit_price),
                "line_total": money(item.unit_price * item.quantity),
            }
            for item in items
        ],
        "total": money(order.total),
        "user_id": str(order.user_id) if order.user_id else None,
        "created_at": iso(order.created_at),
    }


async def _items_of(session: AsyncSession, order_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[OrderItem]]:
    lines: dict[uuid.UUID, list[OrderItem]] = defaultdict(list)
    if order_ids:
        rows = await session.scalars(
            select(OrderItem).where(OrderItem.order_id.in_(order_ids)).order_by(OrderItem.sku, OrderItem.id)
        )
        for item in rows:
            lines[item.order_id].append(item)
    return lines


@describe(
    summary="Place an order",
    body=OrderIn,
    response=OrderOut,
    status=201,
    responses={
        404: "a product is not in this brand",
        409: "not enough stock for a line",
        422: "invalid lines, or a total beyond 9999999999.99",
    },
    tags=TAGS,
)
@requires_permissions("orders.create")
async def create_order(request: Request) -> Response:
    """Reserve stock for every line in one transaction: all lines or none.

    Lines naming the same product are merged. Emits ``order.created`` and,
    for products that fell to their threshold, ``inventory.low_stock`` (and an
    email to the brand's admins).
    """
    body = await parse_body(request, OrderIn)
    quantities: dict[uuid.UUID, int] = defaultdict(int)
    for line in body.items:
        quantities[line.product_id] += line.quantity
    kit = kit_of(request)
    actor = principal_id()
    order_id = uuid.uuid4()
    async with kit.database.session() as session, session.begin():
        changes = []
        for product_id in sorted(quantities, key=str):  # one lock order: no deadlocks between orders
            changes.append(
                await apply_delta(
                    session, product_id, -quantities[product_id], "order", order_id=order_id, actor_id=actor
                )
            )
        items = [
            OrderItem(
                id=uuid.uuid4(),
                order_id=order_id,
                product_id=change.product_id,
                sku=change.sku,
                name=change.name,
                quantity=-change.delta,
                unit_price=change.price,
            )
            for change in changes
        ]
        total = sum((item.unit_price * item.quantity for item in items), Decimal("0"))
        if total > MAX_MONEY:  # the column's precision: refused, never a database overflow
            raise ValidationError(
                [{"loc": ["body", "items"], "msg": f"total exceeds {MAX_MONEY}", "type": "total_too_large"}]
            )
        order = Order(id=order_id, status=CONFIRMED, total=total, user_id=actor, created_at=utcnow())
        session.add(order)
        await session.flush()
        session.add_all(items)
        items.sort(key=lambda item: (item.sku, str(item.id)))
        data = order_to_dict(order, items)
        await kit.webhooks.emit("order.created", data, session=session)
        alerts = await emit_low_stock(kit, session, changes)
    await mail_low_stock(kit, alerts)
    return json_response(data, 201)


@describe(summary="List orders", query=ListQuery, response=OrderList, tags=TAGS)
@requires_permissions("orders.read")
async def list_orders(request: Request) -> Response:
    """A page of the brand's orders, newest first."""
    query = parse_query(request)
    async with kit_of(request).database.read_session() as session:
        orders, next_cursor = await paginate(session, select(Order), Order, query, newest_first=True)
        lines = await _items_of(session, [order.id for order in orders])
    items = [order_to_dict(order, lines[order.id]) for order in orders]
    return json_response({"items": items, "next_cursor": next_cursor})


@describe(summary="Get an order", response=OrderOut, tags=TAGS)
@requires_permissions("orders.read")
async def get_order(request: Request) -> Response:
    """One order of the brand (404 for another brand's)."""
    order_id = path_id(request, what="Order")
    async with kit_of(request).database.read_session() as session:
        order = await scoped_get(session, Order, order_id)
        if order is None:
            raise NotFoundError("Order not found.")
        lines = await _items_of(session, [order.id])
    return json_response(order_to_dict(order, lines[order.id]))
