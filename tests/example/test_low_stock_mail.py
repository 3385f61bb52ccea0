"""The example app emails a brand's admins when an order takes a product to its low-stock threshold."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from inventory_app.app import create_app, create_kit
from tenantkit import Settings
from tenantkit.mail import MemoryMailer
from tests.example.conftest import Example
from tests.helpers import serve

# in_process: it reads the outbox of a mailer in this process.
pytestmark = pytest.mark.in_process


@pytest.fixture
async def mailed(settings_factory: Callable[..., Settings]) -> AsyncIterator[tuple[Example, MemoryMailer]]:
    """The inventory app served with an outbox mailer."""
    mailer = MemoryMailer()
    kit = create_kit(settings_factory(), autoload_plugins=False, mailer=mailer)
    async with serve(create_app(kit)) as client:
        yield Example(client, kit), mailer


async def test_order_crossing_the_threshold_mails_the_brand_admins_once(
    mailed: tuple[Example, MemoryMailer],
) -> None:
    example, mailer = mailed
    acme = await example.brand("Acme")
    globex = await example.brand("Globex")
    product = await example.product(acme, sku="STAPLER", name="Red stapler", stock=10, low_stock_threshold=5)
    mailer.outbox.clear()  # registration mail, if any

    async def order(quantity: int) -> None:
        response = await example.client.post(
            "/orders",
            json={"items": [{"product_id": product["id"], "quantity": quantity}]},
            headers=acme.user,
        )
        assert response.status_code == 201, response.text

    await order(3)  # 10 -> 7: still above the threshold
    assert [m for m in mailer.outbox if m.kind == "inventory.low_stock"] == []

    await order(3)  # 7 -> 4: crosses it
    alerts = [m for m in mailer.outbox if m.kind == "inventory.low_stock"]
    assert len(alerts) == 1
    (alert,) = alerts
    assert alert.to == acme.emails["admin"]  # not the brand's USER, not another brand's admin
    assert "STAPLER" in alert.subject and "4" in alert.subject
    assert "Red stapler" in alert.body
    assert alert.tags == {"tenant_id": acme.id, "product_id": product["id"]}
    assert globex.emails["admin"] not in {m.to for m in mailer.outbox}

    await order(1)  # 4 -> 3: already below, no new alert
    assert len([m for m in mailer.outbox if m.kind == "inventory.low_stock"]) == 1
