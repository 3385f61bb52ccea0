"""The webhook service: endpoints, emitting into the outbox, tenancy."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from tenantkit.context import TenantRef, tenant_context
from tenantkit.db.engine import Database
from tenantkit.errors import NotFoundError, TenantScopeError, ValidationError
from tenantkit.webhooks import WebhookDelivery, WebhookService, matches_event
from tests.webhooks.conftest import MakeService, Receiver


async def endpoint_for(
    service: WebhookService, tenant: TenantRef, url: str, events: list[str] | None = None
) -> tuple[uuid.UUID, str]:
    with tenant_context(tenant):
        endpoint, secret = await service.create_endpoint(url, events or ["*"])
    return endpoint.id, secret


async def delivery(service: WebhookService, tenant: TenantRef, delivery_id: uuid.UUID) -> WebhookDelivery:
    with tenant_context(tenant):
        found = [d for d in await service.list_deliveries() if d.id == delivery_id]
    assert found, "delivery not visible in its tenant"
    return found[0]


# --------------------------------------------------------------------------- #
# Endpoints
# --------------------------------------------------------------------------- #


async def test_create_endpoint_returns_a_whsec_secret_once(
    make_service: MakeService, tenants: tuple[TenantRef, TenantRef], receiver: Receiver
) -> None:
    service = make_service()
    a, _ = tenants
    with tenant_context(a):
        endpoint, secret = await service.create_endpoint(
            receiver.url(), ["order.created", "order.created", "inventory.*"], "ERP"
        )
        listed = await service.list_endpoints()
    assert secret.startswith("whsec_") and endpoint.secret == secret
    assert [e.id for e in listed] == [endpoint.id]
    assert listed[0].events == ["order.created", "inventory.*"]
    assert listed[0].tenant_id == a.id
    assert secret not in repr(endpoint) and receiver.url() not in repr(endpoint)


async def test_create_endpoint_lists_every_invalid_field(
    make_service: MakeService, tenants: tuple[TenantRef, TenantRef]
) -> None:
    service = make_service(allow_hosts=[])
    events: list[Any] = ["ok.event", "bad event", 3]
    with tenant_context(tenants[0]), pytest.raises(ValidationError) as info:
        await service.create_endpoint("http://169.254.169.254/latest", events, "x" * 501)
    locs = [tuple(error["loc"]) for error in info.value.extensions["errors"]]
    assert locs == [("body", "url"), ("body", "events", 1), ("body", "events", 2), ("body", "description")]


@pytest.mark.parametrize("events", [[], "order.created", ["*.created"], ["order..x"], ["x" * 201]])
async def test_events_must_be_a_non_empty_list_of_types(
    make_service: MakeService, tenants: tuple[TenantRef, TenantRef], events: Any
) -> None:
    with tenant_context(tenants[0]), pytest.raises(ValidationError):
        await make_service().create_endpoint("https://example.com/hook", events)


async def test_endpoints_need_a_tenant(make_service: MakeService) -> None:
    service = make_service()
    with pytest.raises(TenantScopeError):
        await service.create_endpoint("https://example.com/hook", ["*"])
    with pytest.raises(TenantScopeError):
        await service.list_endpoints()
    with pytest.raises(TenantScopeError):
        await service.emit("order.created", {})


async def test_tenants_cannot_see_or_delete_each_others_endpoints(
    make_service: MakeService, tenants: tuple[TenantRef, TenantRef], receiver: Receiver
) -> None:
    service = make_service()
    a, b = tenants
    a_endpoint, _ = await endpoint_for(service, a, receiver.url())
    b_endpoint, _ = await endpoint_for(service, b, receiver.url(), ["order.created"])
    with tenant_context(b):
        assert [e.id for e in await service.list_endpoints()] == [b_endpoint]
        with pytest.raises(NotFoundError):
            await service.delete_endpoint(a_endpoint)
        with pytest.raises(NotFoundError):
            await service.get_endpoint(a_endpoint)
    with tenant_context(a):
        assert [e.id for e in await service.list_endpoints()] == [a_endpoint]
        a_ids = await service.emit("order.created", {"n": 1})
        assert len(a_ids) == 1
    with tenant_context(b):
        assert await service.list_deliveries() == []
        with pytest.raises(NotFoundError):
            await service.requeue(a_ids[0])
        assert await service.list_attempts(a_ids[0]) == []
    with tenant_context(a):
        deliveries = await service.list_deliveries()
        assert [d.id for d in deliveries] == a_ids
        assert deliveries[0].endpoint_id == a_endpoint and deliveries[0].tenant_id == a.id
        await service.delete_endpoint(a_endpoint)
        assert await service.list_endpoints() == []
        assert await service.list_deliveries() == []  # deleted with their endpoint
    with tenant_context(b):
        assert [e.id for e in await service.list_endpoints()] == [b_endpoint]


# --------------------------------------------------------------------------- #
# Emitting
# --------------------------------------------------------------------------- #


def test_subscription_matching() -> None:
    assert matches_event(["*"], "order.created")
    assert matches_event(["order.created"], "order.created")
    assert matches_event(["order.*"], "order.line.added")
    assert not matches_event(["order.*"], "orders.created")
    assert not matches_event(["order.created"], "order.cancelled")
    assert not matches_event([], "order.created")


async def test_emit_creates_one_delivery_per_subscribed_endpoint(
    make_service: MakeService, tenants: tuple[TenantRef, TenantRef], receiver: Receiver
) -> None:
    service = make_service()
    a, b = tenants
    every, _ = await endpoint_for(service, a, receiver.url(), ["*"])
    orders, _ = await endpoint_for(service, a, receiver.url(), ["order.*"])
    await endpoint_for(service, a, receiver.url(), ["inventory.low_stock"])
    await endpoint_for(service, b, receiver.url(), ["*"])
    with tenant_context(a):
        ids = await service.emit("order.created", {"total": Decimal("19.99"), "id": uuid.UUID(int=1)})
        deliveries = await service.list_deliveries()
        assert len(await service.emit("user.created", {})) == 1  # the "*" endpoint only
    assert {d.id for d in deliveries} == set(ids)
    assert {d.endpoint_id for d in deliveries} == {every, orders}
    assert all(d.event_id.startswith("msg_") and len(d.event_id) == 36 for d in deliveries)
    assert len({d.event_id for d in deliveries}) == 2
    assert deliveries[0].payload == {"total": "19.99", "id": str(uuid.UUID(int=1))}
    with tenant_context(b):
        assert await service.list_deliveries() == []  # A's events stay in A
        (b_delivery,) = await service.emit("inventory.low_stock", {})
        assert [d.id for d in await service.list_deliveries()] == [b_delivery]
    with tenant_context(a):
        assert len(await service.list_deliveries()) == 3  # B's event did not reach A's endpoints


async def test_emit_refuses_bad_types_and_payloads(
    make_service: MakeService, tenants: tuple[TenantRef, TenantRef]
) -> None:
    service = make_service()
    with tenant_context(tenants[0]):
        for event_type in ("", "order created", "order.*", "a" * 201):
            with pytest.raises(ValueError, match="event_type"):
                await service.emit(event_type, {})
        with pytest.raises(ValueError, match="JSON"):
            await service.emit("order.created", {"x": object()})
        with pytest.raises(ValueError, match="larger"):
            await service.emit("order.created", {"x": "y" * 300_000})


async def test_emit_joins_the_callers_transaction(
    make_service: MakeService,
    database: Database,
    tenants: tuple[TenantRef, TenantRef],
    receiver: Receiver,
) -> None:
    service = make_service()
    a, _ = tenants
    await endpoint_for(service, a, receiver.url())

    async def failing_order() -> None:
        async with database.session() as session, session.begin():
            await service.emit("order.created", {}, session=session)
            raise RuntimeError("the order failed")

    with tenant_context(a):
        with pytest.raises(RuntimeError):
            await failing_order()
        assert await service.list_deliveries() == []
        async with database.session() as session, session.begin():
            ids = await service.emit("order.created", {}, session=session)
        assert [d.id for d in await service.list_deliveries()] == ids
