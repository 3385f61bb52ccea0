"""``/inventory`` and ``/orders``: the ledger, atomic reservations, events, isolation."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from inventory_app.models import Product, StockMovement
from tenantkit import tenant_context
from tenantkit.context import TenantRef
from tenantkit.webhooks import WebhookDelivery
from tests.example.conftest import Brand, Example
from tests.helpers import assert_problem


async def ledger(example: Example, brand: Brand, product_id: str) -> tuple[int, int]:
    """(stock column, sum of the ledger) of a product, read through the Python API."""
    ref = TenantRef(id=uuid.UUID(brand.id), slug=brand.slug)
    with tenant_context(ref):
        async with example.kit.database.session() as session:
            pid = uuid.UUID(product_id)
            stock = await session.scalar(select(Product.stock).where(Product.id == pid))
            total = await session.scalar(
                select(func.coalesce(func.sum(StockMovement.delta), 0)).where(StockMovement.product_id == pid)
            )
    assert stock is not None
    return stock, int(total or 0)


async def events(example: Example, brand: Brand) -> list[tuple[str, Any]]:
    ref = TenantRef(id=uuid.UUID(brand.id), slug=brand.slug)
    with tenant_context(ref):
        async with example.kit.database.session() as session:
            rows = await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at))
            return [(row.event_type, row.payload) for row in rows]


async def adjust(example: Example, brand: Brand, product_id: str, delta: Any, reason: str = "restock") -> Any:
    return await example.client.post(
        f"/inventory/{product_id}/adjustments", json={"delta": delta, "reason": reason}, headers=brand.admin
    )


async def test_adjustments_write_the_ledger_and_never_go_negative(example: Example, acme: Brand) -> None:
    product = await example.product(acme, stock=3)
    response = await adjust(example, acme, product["id"], 7)
    assert response.status_code == 201, response.text
    row = response.json()
    assert row["delta"] == 7
    assert row["stock"] == 10
    assert row["reason"] == "restock"
    assert row["product_id"] == product["id"]
    uuid.UUID(row["id"])

    assert (await adjust(example, acme, product["id"], -4, "damaged")).json()["stock"] == 6
    body = assert_problem(await adjust(example, acme, product["id"], -7, "oops"), 409)
    assert body["available"] == 6
    assert await ledger(example, acme, product["id"]) == (6, 6)

    for bad in (0, "3", 1.5, None):
        assert_problem(await adjust(example, acme, product["id"], bad), 422)
    missing_reason = await example.client.post(
        f"/inventory/{product['id']}/adjustments", json={"delta": 1}, headers=acme.admin
    )
    assert assert_problem(missing_reason, 422)["errors"][0]["loc"] == ["body", "reason"]
    assert_problem(await adjust(example, acme, str(uuid.uuid4()), 1), 404)
    assert_problem(await adjust(example, acme, "nope", 1), 404)


async def test_inventory_lists_stock_per_product(example: Example, acme: Brand, globex: Brand) -> None:
    low = await example.product(acme, sku="LOW", stock=2)
    high = await example.product(acme, sku="HIGH", stock=50, low_stock_threshold=10)
    await example.product(globex, sku="THEIRS", stock=1)
    response = await example.client.get("/inventory", headers=acme.user)
    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    by_sku = {item["sku"]: item for item in body["items"]}
    assert set(by_sku) == {"LOW", "HIGH"}
    assert by_sku["LOW"] == {
        "product_id": low["id"],
        "sku": "LOW",
        "name": "Widget",
        "stock": 2,
        "low_stock_threshold": 5,
        "low_stock": True,
    }
    assert by_sku["HIGH"]["stock"] == 50
    assert by_sku["HIGH"]["low_stock"] is False
    assert by_sku["HIGH"]["product_id"] == high["id"]


async def test_inventory_permissions(example: Example, acme: Brand, globex: Brand) -> None:
    product = await example.product(acme, stock=5)
    assert_problem(await example.client.get("/inventory"), 401)
    forbidden = await example.client.post(
        f"/inventory/{product['id']}/adjustments", json={"delta": 1, "reason": "x"}, headers=acme.user
    )
    assert_problem(forbidden, 403)
    assert_problem(await adjust(example, globex, product["id"], 1), 404)
    assert await ledger(example, acme, product["id"]) == (5, 5)


async def test_order_reserves_stock_and_emits_events(example: Example, acme: Brand) -> None:
    hook = await example.client.post(
        "/webhooks",
        json={"url": "https://hooks.example.com/inventory", "events": ["order.created", "inventory.*"]},
        headers=acme.admin,
    )
    assert hook.status_code == 201, hook.text
    assert hook.json()["secret"].startswith("whsec_")
    pen = await example.product(acme, sku="PEN", name="Pen", price="1.50", stock=8)
    pad = await example.product(acme, sku="PAD", name="Pad", price="19.99", stock=100)

    response = await example.client.post(
        "/orders",
        json={
            "items": [
                {"product_id": pen["id"], "quantity": 2},
                {"product_id": pad["id"], "quantity": 1},
                {"product_id": pen["id"], "quantity": 1},
            ]
        },
        headers=acme.user,
    )
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "confirmed"
    assert order["total"] == "24.49"
    assert order["created_at"].endswith("+00:00")
    lines = {line["sku"]: line for line in order["items"]}
    assert len(order["items"]) == 2
    assert lines["PEN"]["quantity"] == 3
    assert lines["PEN"]["unit_price"] == "1.50"
    assert lines["PEN"]["line_total"] == "4.50"
    assert lines["PAD"]["unit_price"] == "19.99"

    assert await ledger(example, acme, pen["id"]) == (5, 5)
    assert await ledger(example, acme, pad["id"]) == (99, 99)

    got = await example.client.get(f"/orders/{order['id']}", headers=acme.user)
    assert got.status_code == 200
    assert got.json() == order

    types = [event_type for event_type, _ in await events(example, acme)]
    assert types.count("order.created") == 1
    low = [
        payload for event_type, payload in await events(example, acme) if event_type == "inventory.low_stock"
    ]
    assert low == [
        {"product_id": pen["id"], "sku": "PEN", "name": "Pen", "stock": 5, "low_stock_threshold": 5}
    ]
    created = next(
        payload for event_type, payload in await events(example, acme) if event_type == "order.created"
    )
    assert created["id"] == order["id"]
    assert created["total"] == "24.49"

    deliveries = await example.client.get(f"/webhooks/{hook.json()['id']}/deliveries", headers=acme.admin)
    assert sorted(d["event_type"] for d in deliveries.json()["items"]) == [
        "inventory.low_stock",
        "order.created",
    ]

    # Falling further below the threshold does not repeat the event; restocking and falling again does.
    await adjust(example, acme, pen["id"], -1)
    await adjust(example, acme, pen["id"], 10)
    await adjust(example, acme, pen["id"], -10)
    low_events = [t for t, _ in await events(example, acme) if t == "inventory.low_stock"]
    assert len(low_events) == 2


async def test_short_line_rolls_back_the_whole_order(example: Example, acme: Brand) -> None:
    plenty = await example.product(acme, sku="PLENTY", stock=10)
    scarce = await example.product(acme, sku="SCARCE", stock=1)
    response = await example.client.post(
        "/orders",
        json={
            "items": [
                {"product_id": plenty["id"], "quantity": 3},
                {"product_id": scarce["id"], "quantity": 2},
            ]
        },
        headers=acme.user,
    )
    body = assert_problem(response, 409)
    assert body["product_id"] == scarce["id"]
    assert await ledger(example, acme, plenty["id"]) == (10, 10)
    assert await ledger(example, acme, scarce["id"]) == (1, 1)
    assert (await example.client.get("/orders", headers=acme.user)).json()["items"] == []
    assert [t for t, _ in await events(example, acme)] == []


async def test_order_validation_and_other_brands_products(
    example: Example, acme: Brand, globex: Brand
) -> None:
    theirs = await example.product(globex, sku="THEIRS", stock=10)
    mine = await example.product(acme, sku="MINE", stock=10)
    for body in (
        {"items": []},
        {"items": [{"product_id": mine["id"], "quantity": 0}]},
        {"items": [{"product_id": "nope", "quantity": 1}]},
        {"items": [{"product_id": mine["id"]}]},
        {"items": [{"product_id": mine["id"], "quantity": 1, "discount": 5}]},
        {},
    ):
        assert_problem(await example.client.post("/orders", json=body, headers=acme.user), 422)
    cross = await example.client.post(
        "/orders",
        json={
            "items": [{"product_id": mine["id"], "quantity": 1}, {"product_id": theirs["id"], "quantity": 1}]
        },
        headers=acme.user,
    )
    assert_problem(cross, 404)
    assert await ledger(example, acme, mine["id"]) == (10, 10)
    assert await ledger(example, globex, theirs["id"]) == (10, 10)
    assert_problem(await example.client.post("/orders", json={"items": []}), 401)


async def test_orders_list_paginates_newest_first_and_is_per_brand(
    example: Example, acme: Brand, globex: Brand
) -> None:
    product = await example.product(acme, stock=100)
    ids = []
    for quantity in range(1, 6):
        response = await example.client.post(
            "/orders",
            json={"items": [{"product_id": product["id"], "quantity": quantity}]},
            headers=acme.user,
        )
        assert response.status_code == 201
        ids.append(response.json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await example.client.get("/orders", params=params, headers=acme.user)).json()
        seen += [order["id"] for order in page["items"]]
        assert all(order["items"] for order in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    assert (await example.client.get("/orders", headers=globex.admin)).json()["items"] == []
    assert_problem(await example.client.get(f"/orders/{ids[0]}", headers=globex.admin), 404)
    assert_problem(await example.client.get("/orders/xyz", headers=acme.admin), 404)
    assert await ledger(example, acme, product["id"]) == (85, 85)
