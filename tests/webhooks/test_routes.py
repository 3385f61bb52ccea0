"""The webhook management handlers over HTTP (the app adds authentication and permissions)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from tenantkit.context import TenantRef, tenant_context
from tenantkit.http import problem_exception_handlers
from tenantkit.jobs import JobRunner
from tenantkit.webhooks import WebhookService, webhook_routes
from tests.helpers import assert_problem
from tests.webhooks.conftest import Receiver


class TenantFromHeader:
    """Test stand-in for tenantkit's tenant middleware: ``X-Tenant`` is ``<id>:<slug>``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = dict(scope["headers"]).get(b"x-tenant", b"").decode()
        tenant_id, _, slug = raw.partition(":")
        with tenant_context(TenantRef(uuid.UUID(tenant_id), slug)):
            await self.app(scope, receive, send)


@pytest.fixture
async def client(make_service: Callable[..., WebhookService]) -> AsyncIterator[httpx.AsyncClient]:
    calls: list[str] = []

    def decorate(endpoint: Callable[..., object]) -> Callable[..., object]:
        calls.append(endpoint.__name__)
        return endpoint

    app = Starlette(
        routes=webhook_routes(make_service(), decorate=decorate),  # type: ignore[arg-type]
        exception_handlers=problem_exception_handlers(),
    )
    assert len(calls) == 5  # every handler goes through the app's permission wrapper
    wrapped = TenantFromHeader(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url="http://test") as http:
        yield http


def as_tenant(tenant: TenantRef) -> dict[str, str]:
    return {"X-Tenant": f"{tenant.id}:{tenant.slug}"}


async def test_create_list_delete(
    client: httpx.AsyncClient, tenants: tuple[TenantRef, TenantRef], receiver: Receiver
) -> None:
    a, b = tenants
    created = await client.post(
        "/webhooks", json={"url": receiver.url(), "events": ["order.created"]}, headers=as_tenant(a)
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert body["url"] == receiver.url() and body["events"] == ["order.created"] and body["active"] is True

    listed = await client.get("/webhooks", headers=as_tenant(a))
    assert listed.status_code == 200
    assert listed.json()["next_cursor"] is None
    (item,) = listed.json()["items"]
    assert item["id"] == body["id"] and "secret" not in item
    assert body["secret"] not in listed.text

    assert (await client.get("/webhooks", headers=as_tenant(b))).json()["items"] == []
    assert_problem(await client.delete(f"/webhooks/{body['id']}", headers=as_tenant(b)), 404)
    assert_problem(await client.delete("/webhooks/not-a-uuid", headers=as_tenant(a)), 404)
    assert (await client.delete(f"/webhooks/{body['id']}", headers=as_tenant(a))).status_code == 204
    assert (await client.get("/webhooks", headers=as_tenant(a))).json()["items"] == []


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"url": "http://169.254.169.254/latest", "events": ["*"]}, ["body", "url"]),
        ({"url": "http://2130706433/", "events": ["*"]}, ["body", "url"]),
        ({"url": "https://example.com/hook", "events": []}, ["body", "events"]),
        ({"url": "https://example.com/hook", "events": ["*"], "extra": 1}, ["body", "extra"]),
        ({"url": "https://example.com/hook"}, ["body", "events"]),
        ({"url": 5, "events": ["*"]}, ["body", "url"]),
    ],
)
async def test_invalid_bodies_are_422_with_the_field(
    client: httpx.AsyncClient,
    tenants: tuple[TenantRef, TenantRef],
    payload: dict[str, object],
    loc: list[str],
) -> None:
    response = await client.post("/webhooks", json=payload, headers=as_tenant(tenants[0]))
    problem = assert_problem(response, 422)
    assert loc in [error["loc"] for error in problem["errors"]]  # type: ignore[attr-defined]


async def test_deliveries_and_requeue(
    client: httpx.AsyncClient,
    make_service: Callable[..., WebhookService],
    jobs: JobRunner,
    tenants: tuple[TenantRef, TenantRef],
    receiver: Receiver,
) -> None:
    a, b = tenants
    created = (
        await client.post("/webhooks", json={"url": receiver.url(), "events": ["*"]}, headers=as_tenant(a))
    ).json()
    service = make_service(max_attempts=1)
    receiver.default = 500
    with tenant_context(a):
        (delivery_id,) = await service.emit("order.created", {"n": 1})
    await jobs.join()

    listed = await client.get(f"/webhooks/{created['id']}/deliveries?status=dead", headers=as_tenant(a))
    (item,) = listed.json()["items"]
    assert item["id"] == str(delivery_id)
    assert (item["status"], item["attempts"], item["last_status_code"]) == ("dead", 1, 500)
    assert_problem(await client.get(f"/webhooks/{created['id']}/deliveries", headers=as_tenant(b)), 404)
    assert_problem(
        await client.get(f"/webhooks/{created['id']}/deliveries?status=lost", headers=as_tenant(a)), 422
    )

    assert_problem(
        await client.post(f"/webhooks/deliveries/{delivery_id}/requeue", headers=as_tenant(b)), 404
    )
    receiver.default = 200
    requeued = await client.post(f"/webhooks/deliveries/{delivery_id}/requeue", headers=as_tenant(a))
    assert requeued.status_code == 200 and requeued.json()["status"] == "pending"
    await jobs.join()  # delivered this time: no longer dead
    assert_problem(
        await client.post(f"/webhooks/deliveries/{delivery_id}/requeue", headers=as_tenant(a)), 409
    )
