"""``/inventory``: stock levels and the adjustment ledger."""

from __future__ import annotations

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from inventory_app.models import Product
from inventory_app.routes.common import iso, kit_of, paginate, parse_query, path_id, principal_id
from inventory_app.schemas import AdjustmentIn, AdjustmentOut, InventoryList, ListQuery
from inventory_app.stock import apply_delta, emit_low_stock, mail_low_stock
from tenantkit import json_response, parse_body
from tenantkit.openapi import describe
from tenantkit.rbac import requires_permissions

__all__ = ["adjust_stock", "list_inventory"]

TAGS = ["inventory"]


@describe(summary="Stock per product", query=ListQuery, response=InventoryList, tags=TAGS)
@requires_permissions("inventory.read")
async def list_inventory(request: Request) -> Response:
    """A page of stock levels, in the products' order; ``low_stock`` marks those at or below threshold."""
    query = parse_query(request)
    async with kit_of(request).database.read_session() as session:
        products, next_cursor = await paginate(session, select(Product), Product, query)
    items = [
        {
            "product_id": str(p.id),
            "sku": p.sku,
            "name": p.name,
            "stock": p.stock,
            "low_stock_threshold": p.low_stock_threshold,
            "low_stock": p.stock <= p.low_stock_threshold,
        }
        for p in products
    ]
    return json_response({"items": items, "next_cursor": next_cursor})


@describe(
    summary="Adjust a product's stock",
    body=AdjustmentIn,
    response=AdjustmentOut,
    status=201,
    responses={404: "no such product in this brand", 409: "the stock would fall below zero"},
    tags=TAGS,
)
@requires_permissions("inventory.adjust")
async def adjust_stock(request: Request) -> Response:
    """Add (positive ``delta``) or remove stock; writes one ledger row. Stock never goes negative."""
    product_id = path_id(request, "product_id", what="Product")
    body = await parse_body(request, AdjustmentIn)
    kit = kit_of(request)
    async with kit.database.session() as session, session.begin():
        change = await apply_delta(session, product_id, body.delta, body.reason, actor_id=principal_id())
        alerts = await emit_low_stock(kit, session, [change])
    await mail_low_stock(kit, alerts)
    movement = change.movement
    return json_response(
        {
            "id": str(movement.id),
            "product_id": str(product_id),
            "delta": movement.delta,
            "reason": movement.reason,
            "stock": change.stock,
            "order_id": None,
            "created_at": iso(movement.created_at),
        },
        201,
    )
