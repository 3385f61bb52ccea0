"""No overselling: concurrent orders against scarce stock."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.example.conftest import Brand, Example
from tests.example.test_inventory_orders import ledger


async def test_fifty_concurrent_orders_against_stock_ten(example: Example, acme: Brand) -> None:
    product = await example.product(acme, sku="HOT", stock=10)
    order = {"items": [{"product_id": product["id"], "quantity": 1}]}

    async def place() -> int:
        response = await example.client.post("/orders", json=order, headers=acme.user)
        assert response.status_code in (201, 409), response.text
        return response.status_code

    statuses = Counter(await asyncio.gather(*(place() for _ in range(50))))
    assert statuses == {201: 10, 409: 40}
    assert await ledger(example, acme, product["id"]) == (0, 0)
    listed = (await example.client.get("/orders", params={"limit": "100"}, headers=acme.user)).json()
    assert len(listed["items"]) == 10
    inventory = (await example.client.get("/inventory", headers=acme.user)).json()["items"]
    assert inventory[0]["stock"] == 0
