"""The dispatcher: endpoints, the outbox, retries, dead letters, SSRF at send time, tenancy."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from tenantkit.context import TenantRef, tenant_context
from tenantkit.db.engine import Database
from tenantkit.errors import ConflictError, NotFoundError, TenantScopeError, ValidationError
from tenantkit.tenancy import unscoped
from tenantkit.webhooks import WebhookDelivery, WebhookDispatcher, matches_event, verify
from tenantkit.webhooks import ssrf as ssrf_module
from tests.webhooks.conftest import HookRecorder, Receiver

MakeDispatcher = Callable[..., WebhookDispatcher]


async def endpoint_for(
    dispatcher: WebhookDispatcher, tenant: TenantRef, url: str, events: list[str] | None = None
) -> tuple[uuid.UUID, str]:
    with tenant_context(tenant):
        endpoint, secret = await dispatcher.create_endpoint(url, events or ["*"])
    return endpoint.id, secret


async def delivery(
    dispatcher: WebhookDispatcher, tenant: TenantRef, delivery_id: uuid.UUID
) -> WebhookDelivery:
    with tenant_context(tenant):
        found = [d for d in await dispatcher.list_deliveries() if d.id == delivery_id]
    assert found, "delivery not visible in its tenant"
    return found[0]


# --------------------------------------------------------------------------- #
# Endpoints
# --------------------------------------------------------------------------- #


async def test_create_endpoint_returns_a_whsec_secret_once(
    make_dispatcher: MakeDispatcher, tenants: tuple[TenantRef, TenantRef], receiver: Receiver
) -> None:
    dispatcher = make_dispatcher()
    a, _ = tenants
    with tenant_context(a):
        endpoint, secret = await dispatcher.create_endpoint(
            receiver.url(), ["order.created", "order.created", "inventory.*"], "ERP"
        )
        listed = await dispatcher.list_endpoints()
    assert secret.startswith("whsec_") and endpoint.secret == secret
    assert [e.id for e in listed] == [endpoint.id]
    assert listed[0].events == ["order.created", "inventory.*"]
    assert listed[0].tenant_id == a.id
    assert secret not in repr(endpoint) and receiver.url() not in repr(endpoint)


async def test_create_endpoint_lists_every_invalid_field(
    make_dispatcher: MakeDispatcher, tenants: tuple[TenantRef, TenantRef]
) -> None:
    dispatcher = make_dispatcher(allow_hosts=[])
    events: list[Any] = ["ok.event", "bad event", 3]
    with tenant_context(tenants[0]), pytest.raises(ValidationError) as info:
        await dispatcher.create_endpoint("http://169.254.169.254/latest", events, "x" * 501)
    locs = [tuple(error["loc"]) for error in info.value.extensions["errors"]]
    assert locs == [("body", "url"), ("body", "events", 1), ("body", "events", 2), ("body", "description")]


@pytest.mark.parametrize("events", [[], "order.created", ["*.created"], ["order..x"], ["x" * 201]])
async def test_events_must_be_a_non_empty_list_of_types(
    make_dispatcher: MakeDispatcher, tenants: tuple[TenantRef, TenantRef], events: Any
) -> None:
    with tenant_context(tenants[0]), pytest.raises(ValidationError):
        await make_dispatcher().create_endpoint("https://example.com/hook", events)


async def test_endpoints_need_a_tenant(make_dispatcher: MakeDispatcher) -> None:
    dispatcher = make_dispatcher()
    with pytest.raises(TenantScopeError):
        await dispatcher.create_endpoint("https://example.com/hook", ["*"])
    with pytest.raises(TenantScopeError):
        await dispatcher.list_endpoints()
    with pytest.raises(TenantScopeError):
        await dispatcher.emit("order.created", {})


async def test_tenants_cannot_see_or_delete_each_others_endpoints(
    make_dispatcher: MakeDispatcher, tenants: tuple[TenantRef, TenantRef], receiver: Receiver
) -> None:
    dispatcher = make_dispatcher()
    a, b = tenants
    a_endpoint, _ = await endpoint_for(dispatcher, a, receiver.url())
    b_endpoint, _ = await endpoint_for(dispatcher, b, receiver.url(), ["order.created"])
    with tenant_context(b):
        assert [e.id for e in await dispatcher.list_endpoints()] == [b_endpoint]
        with pytest.raises(NotFoundError):
            await dispatcher.delete_endpoint(a_endpoint)
        with pytest.raises(NotFoundError):
            await dispatcher.get_endpoint(a_endpoint)
    with tenant_context(a):
        assert [e.id for e in await dispatcher.list_endpoints()] == [a_endpoint]
        a_ids = await dispatcher.emit("order.created", {"n": 1})
        assert len(a_ids) == 1
    with tenant_context(b):
        assert await dispatcher.list_deliveries() == []
        with pytest.raises(NotFoundError):
            await dispatcher.requeue(a_ids[0])
        assert await dispatcher.list_attempts(a_ids[0]) == []
    with tenant_context(a):
        deliveries = await dispatcher.list_deliveries()
        assert [d.id for d in deliveries] == a_ids
        assert deliveries[0].endpoint_id == a_endpoint and deliveries[0].tenant_id == a.id
        await dispatcher.delete_endpoint(a_endpoint)
        assert await dispatcher.list_endpoints() == []
        assert await dispatcher.list_deliveries() == []  # deleted with their endpoint
    with tenant_context(b):
        assert [e.id for e in await dispatcher.list_endpoints()] == [b_endpoint]


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
    make_dispatcher: MakeDispatcher, tenants: tuple[TenantRef, TenantRef], receiver: Receiver
) -> None:
    dispatcher = make_dispatcher()
    a, b = tenants
    every, _ = await endpoint_for(dispatcher, a, receiver.url(), ["*"])
    orders, _ = await endpoint_for(dispatcher, a, receiver.url(), ["order.*"])
    await endpoint_for(dispatcher, a, receiver.url(), ["inventory.low_stock"])
    await endpoint_for(dispatcher, b, receiver.url(), ["*"])
    with tenant_context(a):
        ids = await dispatcher.emit("order.created", {"total": Decimal("19.99"), "id": uuid.UUID(int=1)})
        deliveries = await dispatcher.list_deliveries(status="pending")
        assert len(await dispatcher.emit("user.created", {})) == 1  # the "*" endpoint only
    assert {d.id for d in deliveries} == set(ids)
    assert {d.endpoint_id for d in deliveries} == {every, orders}
    assert all(d.event_id.startswith("msg_") and len(d.event_id) == 36 for d in deliveries)
    assert len({d.event_id for d in deliveries}) == 2
    assert deliveries[0].payload == {"total": "19.99", "id": str(uuid.UUID(int=1))}
    with tenant_context(b):
        assert await dispatcher.list_deliveries() == []  # A's events stay in A
        (b_delivery,) = await dispatcher.emit("inventory.low_stock", {})
        assert [d.id for d in await dispatcher.list_deliveries()] == [b_delivery]
    with tenant_context(a):
        assert len(await dispatcher.list_deliveries()) == 3  # B's event did not reach A's endpoints


async def test_emit_refuses_bad_types_and_payloads(
    make_dispatcher: MakeDispatcher, tenants: tuple[TenantRef, TenantRef]
) -> None:
    dispatcher = make_dispatcher()
    with tenant_context(tenants[0]):
        for event_type in ("", "order created", "order.*", "a" * 201):
            with pytest.raises(ValueError, match="event_type"):
                await dispatcher.emit(event_type, {})
        with pytest.raises(ValueError, match="JSON"):
            await dispatcher.emit("order.created", {"x": object()})
        with pytest.raises(ValueError, match="larger"):
            await dispatcher.emit("order.created", {"x": "y" * 300_000})


async def test_emit_joins_the_callers_transaction(
    make_dispatcher: MakeDispatcher,
    database: Database,
    tenants: tuple[TenantRef, TenantRef],
    receiver: Receiver,
) -> None:
    dispatcher = make_dispatcher()
    a, _ = tenants
    await endpoint_for(dispatcher, a, receiver.url())

    async def failing_order() -> None:
        async with database.session() as session, session.begin():
            await dispatcher.emit("order.created", {}, session=session)
            raise RuntimeError("the order failed")

    with tenant_context(a):
        with pytest.raises(RuntimeError):
            await failing_order()
        assert await dispatcher.list_deliveries() == []
        async with database.session() as session, session.begin():
            ids = await dispatcher.emit("order.created", {}, session=session)
        assert [d.id for d in await dispatcher.list_deliveries()] == ids


# --------------------------------------------------------------------------- #
# Delivering
# --------------------------------------------------------------------------- #


async def test_a_receiver_failing_twice_gets_the_third_attempt_signed(
    make_dispatcher: MakeDispatcher,
    tenants: tuple[TenantRef, TenantRef],
    receiver: Receiver,
    hooks: HookRecorder,
) -> None:
    dispatcher = make_dispatcher(max_attempts=5, backoff_base=0.001)
    a, _ = tenants
    endpoint_id, secret = await endpoint_for(dispatcher, a, receiver.url(), ["order.created"])
    receiver.secret = secret
    receiver.script = [500, 503]
    with tenant_context(a):
        (delivery_id,) = await dispatcher.emit("order.created", {"order_id": "o-1", "total": "19.99"})
    for _ in range(3):
        await asyncio.sleep(0.01)
        assert await dispatcher.run_due() == 1
    assert await dispatcher.run_due() == 0

    hits = receiver.on("/hook")
    assert len(hits) == 3
    assert all(hit.verified for hit in hits)  # every attempt is signed, each with its own timestamp
    assert len({hit.headers["webhook-id"] for hit in hits}) == 1
    first = hits[0]
    assert first.headers["webhook-id"].startswith("msg_")
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["User-Agent"] == "tenantkit-webhooks"
    assert abs(int(first.headers["webhook-timestamp"]) - time.time()) < 60
    body = json.loads(first.body)
    assert body["type"] == "order.created"
    assert body["data"] == {"order_id": "o-1", "total": "19.99"}
    assert datetime.fromisoformat(body["timestamp"]).utcoffset() is not None
    assert {hit.body for hit in hits} == {first.body}

    done = await delivery(dispatcher, a, delivery_id)
    assert (done.status, done.attempts, done.last_status_code, done.last_error) == ("delivered", 3, 200, None)
    assert done.delivered_at is not None
    with tenant_context(a):
        log = await dispatcher.list_attempts(delivery_id)
    assert [(x.attempt, x.status_code) for x in log] == [(1, 500), (2, 503), (3, 200)]
    assert [x.error for x in log] == ["HTTP 500", "HTTP 503", None]
    assert hooks.delivered == [
        {"endpoint_id": str(endpoint_id), "event_id": done.event_id, "status": 200, "attempt": 3}
    ]
    assert hooks.dead == []


async def test_the_signature_is_fresh_for_each_attempt(
    make_dispatcher: MakeDispatcher,
    tenants: tuple[TenantRef, TenantRef],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dispatcher = make_dispatcher()
    a, _ = tenants
    _, secret = await endpoint_for(dispatcher, a, receiver.url())
    receiver.script = [500]
    clock = iter([1_700_000_000, 1_700_000_100])
    monkeypatch.setattr("tenantkit.webhooks.dispatcher._unix_now", lambda: next(clock))
    with tenant_context(a):
        await dispatcher.emit("order.created", {})
    await dispatcher.run_due()
    await dispatcher.run_due()
    first, second = receiver.on("/hook")
    assert (first.headers["webhook-timestamp"], second.headers["webhook-timestamp"]) == (
        "1700000000",
        "1700000100",
    )
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]
    for hit in (first, second):
        verify(secret, hit.headers, hit.body, now=float(hit.headers["webhook-timestamp"]))


async def test_a_dead_delivery_is_logged_and_requeued(
    make_dispatcher: MakeDispatcher,
    tenants: tuple[TenantRef, TenantRef],
    receiver: Receiver,
    hooks: HookRecorder,
) -> None:
    dispatcher = make_dispatcher(max_attempts=3)
    a, _ = tenants
    endpoint_id, _ = await endpoint_for(dispatcher, a, receiver.url())
    receiver.default = 500
    with tenant_context(a):
        (delivery_id,) = await dispatcher.emit("inventory.low_stock", {"sku": "A-1"})
        with pytest.raises(ConflictError):
            await dispatcher.requeue(delivery_id)
    for _ in range(5):
        await dispatcher.run_due()
    assert len(receiver.on("/hook")) == 3  # no attempt after the last one

    dead = await delivery(dispatcher, a, delivery_id)
    assert (dead.status, dead.attempts, dead.last_status_code, dead.last_error) == (
        "dead",
        3,
        500,
        "HTTP 500",
    )
    with tenant_context(a):
        assert [x.attempt for x in await dispatcher.list_attempts(delivery_id)] == [1, 2, 3]
        assert [d.id for d in await dispatcher.list_deliveries(status="dead")] == [delivery_id]
    assert hooks.dead == [
        {"endpoint_id": str(endpoint_id), "event_id": dead.event_id, "error": "HTTP 500", "attempts": 3}
    ]

    receiver.default = 204
    with tenant_context(a):
        requeued = await dispatcher.requeue(delivery_id)
    assert (requeued.status, requeued.attempts) == ("pending", 0)
    assert await dispatcher.run_due() == 1
    done = await delivery(dispatcher, a, delivery_id)
    assert (done.status, done.attempts, done.last_status_code) == ("delivered", 1, 204)
    assert len(receiver.on("/hook")) == 4
    assert hooks.delivered[-1]["attempt"] == 1


async def test_redirects_are_not_followed_and_count_as_failures(
    make_dispatcher: MakeDispatcher, tenants: tuple[TenantRef, TenantRef], receiver: Receiver
) -> None:
    dispatcher = make_dispatcher()
    a, _ = tenants
    await endpoint_for(dispatcher, a, receiver.url("/redirect"))
    with tenant_context(a):
        (delivery_id,) = await dispatcher.emit("order.created", {})
    assert await dispatcher.run_due() == 1
    assert len(receiver.on("/redirect")) == 1
    assert receiver.on("/other") == []
    failed = await delivery(dispatcher, a, delivery_id)
    assert (failed.status, failed.attempts, failed.last_status_code) == ("pending", 1, 302)
    assert "redirect" in (failed.last_error or "")


async def test_an_endless_response_body_is_cut_off(
    make_dispatcher: MakeDispatcher, tenants: tuple[TenantRef, TenantRef], receiver: Receiver
) -> None:
    dispatcher = make_dispatcher(timeout=5.0)
    a, _ = tenants
    await endpoint_for(dispatcher, a, receiver.url("/huge"))
    with tenant_context(a):
        (delivery_id,) = await dispatcher.emit("order.created", {})
    started = time.monotonic()
    assert await dispatcher.run_due() == 1
    assert time.monotonic() - started < 4.0  # well before the timeout: it stopped reading
    done = await delivery(dispatcher, a, delivery_id)
    assert (done.status, done.last_status_code) == ("delivered", 200)
    await asyncio.sleep(0.2)
    assert receiver.huge_bytes_sent < 64 * 1024 * 1024  # the stream was dropped, not drained


async def test_a_stalled_receiver_times_out(
    make_dispatcher: MakeDispatcher, tenants: tuple[TenantRef, TenantRef], receiver: Receiver
) -> None:
    dispatcher = make_dispatcher(timeout=0.5)
    a, _ = tenants
    await endpoint_for(dispatcher, a, receiver.url("/stall"))
    with tenant_context(a):
        (delivery_id,) = await dispatcher.emit("order.created", {})
    started = time.monotonic()
    await dispatcher.run_due()
    assert time.monotonic() - started < 3.0
    failed = await delivery(dispatcher, a, delivery_id)
    assert (failed.status, failed.last_status_code) == ("pending", None)
    assert "timed out" in (failed.last_error or "")


async def test_urls_are_checked_again_at_send_time(
    make_dispatcher: MakeDispatcher, tenants: tuple[TenantRef, TenantRef], receiver: Receiver
) -> None:
    saving = make_dispatcher()  # 127.0.0.1 allowed when the endpoint is saved...
    sending = make_dispatcher(allow_hosts=[])  # ...but no longer when it is sent
    a, _ = tenants
    await endpoint_for(saving, a, receiver.url())
    with tenant_context(a):
        (delivery_id,) = await saving.emit("order.created", {})
    assert await sending.run_due() == 1
    assert receiver.hits == []
    failed = await delivery(sending, a, delivery_id)
    assert failed.last_status_code is None
    assert "refused" in (failed.last_error or "")
    assert receiver.url() not in (failed.last_error or "")


async def test_a_name_is_resolved_once_and_the_checked_address_is_used(
    make_dispatcher: MakeDispatcher,
    tenants: tuple[TenantRef, TenantRef],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding: the first answer is public and checked, later answers point at loopback."""
    loop = asyncio.get_running_loop()
    calls: list[str] = []

    async def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        calls.append(str(host))
        address = "93.184.215.14" if len(calls) % 2 == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

    dispatcher = make_dispatcher(allow_hosts=[], timeout=1.0)
    a, _ = tenants
    await endpoint_for(dispatcher, a, f"http://rebind.example.com:{receiver.port}/hook")
    with tenant_context(a):
        (delivery_id,) = await dispatcher.emit("order.created", {})
    monkeypatch.setattr(loop, "getaddrinfo", rebinding)
    await dispatcher.run_due()
    monkeypatch.undo()
    assert calls == ["rebind.example.com"]  # one lookup per attempt: the connection used its answer
    assert receiver.hits == []  # the loopback answer never reached
    failed = await delivery(dispatcher, a, delivery_id)
    assert failed.status == "pending" and failed.last_status_code is None


async def test_allow_listed_names_are_pinned_too(
    make_dispatcher: MakeDispatcher,
    tenants: tuple[TenantRef, TenantRef],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    async def fake(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(ssrf_module, "_getaddrinfo", fake)
    dispatcher = make_dispatcher(allow_hosts=["receiver.test"])
    a, _ = tenants
    await endpoint_for(dispatcher, a, f"http://receiver.test:{receiver.port}/hook")
    with tenant_context(a):
        (delivery_id,) = await dispatcher.emit("order.created", {})
    await dispatcher.run_due()
    # "receiver.test" has no DNS record: only the checked address can have been used
    assert (await delivery(dispatcher, a, delivery_id)).status == "delivered"
    assert calls == ["receiver.test"]
    assert receiver.on("/hook")[0].headers["Host"] == f"receiver.test:{receiver.port}"


async def test_an_unreachable_receiver_fails_cleanly(
    make_dispatcher: MakeDispatcher, tenants: tuple[TenantRef, TenantRef], receiver: Receiver
) -> None:
    from tests.conftest import free_port

    dispatcher = make_dispatcher()
    a, _ = tenants
    await endpoint_for(dispatcher, a, f"http://127.0.0.1:{free_port()}/hook?token=s3cr3t")
    with tenant_context(a):
        (delivery_id,) = await dispatcher.emit("order.created", {})
    await dispatcher.run_due()
    failed = await delivery(dispatcher, a, delivery_id)
    assert failed.status == "pending" and failed.last_error
    assert "s3cr3t" not in failed.last_error


async def test_deliveries_of_every_tenant_go_out_in_their_own_tenant(
    make_dispatcher: MakeDispatcher, tenants: tuple[TenantRef, TenantRef], receiver: Receiver
) -> None:
    dispatcher = make_dispatcher()
    a, b = tenants
    _, secret_a = await endpoint_for(dispatcher, a, receiver.url("/hook"))
    _, secret_b = await endpoint_for(dispatcher, b, receiver.url("/hook"))
    with tenant_context(a):
        await dispatcher.emit("order.created", {"tenant": "a"})
    with tenant_context(b):
        await dispatcher.emit("order.created", {"tenant": "b"})
    assert await dispatcher.run_due() == 2
    for hit in receiver.on("/hook"):
        owner = json.loads(hit.body)["data"]["tenant"]
        verify(secret_a if owner == "a" else secret_b, hit.headers, hit.body)
    with tenant_context(a):
        assert [d.status for d in await dispatcher.list_deliveries()] == ["delivered"]


async def test_run_due_respects_the_limit_and_the_schedule(
    make_dispatcher: MakeDispatcher,
    tenants: tuple[TenantRef, TenantRef],
    receiver: Receiver,
    database: Database,
) -> None:
    dispatcher = make_dispatcher(concurrency=2, backoff_base=3600)
    a, _ = tenants
    await endpoint_for(dispatcher, a, receiver.url())
    with tenant_context(a):
        for n in range(5):
            await dispatcher.emit("order.created", {"n": n})
    assert await dispatcher.run_due(limit=3) == 3
    assert await dispatcher.run_due() == 2
    receiver.default = 500
    with tenant_context(a):
        await dispatcher.emit("order.created", {"n": 5})
    assert await dispatcher.run_due() == 1
    assert await dispatcher.run_due() == 0  # retried in about an hour
    with unscoped("test"):
        async with database.session() as session:
            rows = (
                await session.scalars(select(WebhookDelivery).where(WebhookDelivery.status == "pending"))
            ).all()
    assert len(rows) == 1
    wait = (rows[0].next_attempt_at - datetime.now(UTC)).total_seconds()
    assert 0.8 * 3600 - 5 <= wait <= 3600


def test_backoff_grows_exponentially_with_jitter_and_a_cap(make_dispatcher: MakeDispatcher) -> None:
    dispatcher = make_dispatcher(backoff_base=2.0, backoff_cap=60)
    for attempt, nominal in [(1, 2), (2, 4), (3, 8), (4, 16), (5, 32), (6, 60), (40, 60), (10_000, 60)]:
        delays = {dispatcher.backoff(attempt) for _ in range(20)}
        assert all(0.8 * nominal <= d <= nominal for d in delays)
        assert len(delays) > 1


async def test_run_forever_delivers_until_stopped(
    make_dispatcher: MakeDispatcher, tenants: tuple[TenantRef, TenantRef], receiver: Receiver
) -> None:
    dispatcher = make_dispatcher()
    a, _ = tenants
    await endpoint_for(dispatcher, a, receiver.url())
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run_forever(interval=0.05, stop=stop))
    with tenant_context(a):
        (delivery_id,) = await dispatcher.emit("order.created", {})
    for _ in range(100):
        if receiver.hits:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert (await delivery(dispatcher, a, delivery_id)).status == "delivered"


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
async def test_concurrent_workers_deliver_each_delivery_exactly_once(
    make_dispatcher: MakeDispatcher, db_url: str, tenants: tuple[TenantRef, TenantRef], receiver: Receiver
) -> None:
    first = make_dispatcher(concurrency=3)
    a, b = tenants
    await endpoint_for(first, a, receiver.url())
    await endpoint_for(first, b, receiver.url())
    emitted: list[uuid.UUID] = []
    for tenant in (a, b):
        with tenant_context(tenant):
            for n in range(12):
                emitted += await first.emit("order.created", {"n": n})
    receiver.delay = 0.01
    others = [Database(db_url) for _ in range(2)]
    try:
        workers = [first, *(make_dispatcher(database=db, concurrency=3) for db in others)]
        counts = await asyncio.gather(*(worker.run_due() for worker in workers))
    finally:
        for db in others:
            await db.dispose()
    assert sum(counts) == len(emitted) == 24
    ids = [hit.headers["webhook-id"] for hit in receiver.on("/hook")]
    assert len(ids) == 24 and len(set(ids)) == 24
    for tenant in (a, b):
        with tenant_context(tenant):
            assert {d.status for d in await first.list_deliveries()} == {"delivered"}
            assert {d.attempts for d in await first.list_deliveries()} == {1}
