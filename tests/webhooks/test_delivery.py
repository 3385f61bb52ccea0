"""Delivering webhooks as jobs: signing, retries on the jobs model, dead letters, SSRF at send time."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from typing import Any

import pytest
from taskiq import InMemoryBroker
from taskiq.message import BrokerMessage

from tenantkit.context import TenantRef, tenant_context
from tenantkit.db.engine import Database
from tenantkit.errors import ConflictError
from tenantkit.jobs import JobRunner
from tenantkit.observability.metrics import Metrics
from tenantkit.plugins import hookimpl
from tenantkit.security import ssrf as ssrf_module
from tenantkit.webhooks import DELIVER, WebhookService, verify
from tests.webhooks.conftest import HookEvents, HookRecorder, MakeService, Receiver
from tests.webhooks.test_service import delivery, endpoint_for


async def test_a_receiver_failing_twice_gets_the_third_attempt_signed(
    make_service: MakeService,
    jobs: JobRunner,
    tenants: tuple[TenantRef, TenantRef],
    receiver: Receiver,
    hooks: HookRecorder,
) -> None:
    service = make_service()
    a, _ = tenants
    endpoint_id, secret = await endpoint_for(service, a, receiver.url(), ["order.created"])
    receiver.secret = secret
    receiver.script = [500, 503]
    with tenant_context(a):
        (delivery_id,) = await service.emit("order.created", {"order_id": "o-1", "total": "19.99"})
    await jobs.join()

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
    assert {hit.body for hit in hits} == {first.body}

    done = await delivery(service, a, delivery_id)
    assert (done.status, done.attempts, done.last_status_code, done.last_error) == ("delivered", 3, 200, None)
    assert done.delivered_at is not None
    with tenant_context(a):
        log = await service.list_attempts(delivery_id)
    assert [(x.attempt, x.status_code) for x in log] == [(1, 500), (2, 503), (3, 200)]
    assert [x.error for x in log] == ["HTTP 500", "HTTP 503", None]
    assert hooks.delivered == [
        {"endpoint_id": str(endpoint_id), "event_id": done.event_id, "status": 200, "attempt": 3}
    ]
    assert hooks.dead == []
    assert (await jobs.dead_letters())[0] == []


async def test_the_signature_is_fresh_for_each_attempt(
    make_service: MakeService,
    jobs: JobRunner,
    tenants: tuple[TenantRef, TenantRef],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = make_service()
    a, _ = tenants
    _, secret = await endpoint_for(service, a, receiver.url())
    receiver.script = [500]
    clock = iter([1_700_000_000, 1_700_000_100])
    monkeypatch.setattr("tenantkit.webhooks.delivery._unix_now", lambda: next(clock))
    with tenant_context(a):
        await service.emit("order.created", {})
    await jobs.join()
    first, second = receiver.on("/hook")
    assert (first.headers["webhook-timestamp"], second.headers["webhook-timestamp"]) == (
        "1700000000",
        "1700000100",
    )
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]
    for hit in (first, second):
        verify(secret, hit.headers, hit.body, now=float(hit.headers["webhook-timestamp"]))


class FailedJobs:
    """Records ``tenantkit_on_job_failure``."""

    def __init__(self) -> None:
        self.failed: list[tuple[str, bool]] = []

    @hookimpl
    def tenantkit_on_job_failure(
        self, task_name: str, tenant_id: str | None, labels: dict[str, Any], error: str, dead: bool
    ) -> None:
        self.failed.append((task_name, dead))


async def test_a_failing_delivery_is_retried_by_the_jobs_model_and_dead_lettered_with_the_jobs(
    database: Database, tenants: tuple[TenantRef, TenantRef], receiver: Receiver, hooks: HookRecorder
) -> None:
    recorder = FailedJobs()
    events = HookEvents(hooks, recorder)
    runner = JobRunner(database=database, metrics=Metrics(), events=events, retry_base=0.05, retry_cap=1.0)
    await runner.startup()
    try:
        service = WebhookService(database, runner, events=events, allow_hosts=["127.0.0.1"], max_attempts=3)
        a, b = tenants
        endpoint_id, _ = await endpoint_for(service, a, receiver.url())
        receiver.default = 500
        with tenant_context(a):
            (delivery_id,) = await service.emit("inventory.low_stock", {"sku": "A-1"})
            with pytest.raises(ConflictError):
                await service.requeue(delivery_id)
        started = time.monotonic()
        await runner.join()
        assert time.monotonic() - started >= 0.05  # the jobs backoff: 0.025+ then 0.05+ seconds
        assert len(receiver.on("/hook")) == 3  # no attempt after the last one
        assert recorder.failed == [(DELIVER, False), (DELIVER, False), (DELIVER, True)]

        dead = await delivery(service, a, delivery_id)
        assert (dead.status, dead.attempts, dead.last_status_code, dead.last_error) == (
            "dead",
            3,
            500,
            "HTTP 500",
        )
        assert hooks.dead == [
            {"endpoint_id": str(endpoint_id), "event_id": dead.event_id, "error": "HTTP 500", "attempts": 3}
        ]
        # the one dead-letter store, in the delivery's tenant
        (letter,) = (await runner.dead_letters(tenant_id=a.id))[0]
        assert (letter.task_name, letter.attempts) == (DELIVER, 3)
        assert letter.args == {"args": [str(delivery_id)], "kwargs": {}}
        assert "HTTP 500" in letter.error
        assert (await runner.dead_letters(tenant_id=b.id))[0] == []

        # the one requeue path: what POST /jobs/dead-letters/{id}/requeue and the CLI call
        receiver.default = 204
        await runner.requeue(letter.id)
        await runner.join()
        done = await delivery(service, a, delivery_id)
        assert (done.status, done.attempts, done.last_status_code) == ("delivered", 1, 204)
        assert hooks.delivered[-1]["attempt"] == 1
        with tenant_context(a):
            assert [x.attempt for x in await service.list_attempts(delivery_id)] == [1, 2, 3, 1]
        assert (await runner.dead_letter(letter.id)).requeued_at is not None  # type: ignore[union-attr]
    finally:
        await runner.shutdown()


async def test_the_webhook_requeue_goes_through_the_jobs_dead_letter(
    make_service: MakeService,
    jobs: JobRunner,
    tenants: tuple[TenantRef, TenantRef],
    receiver: Receiver,
    hooks: HookRecorder,
) -> None:
    service = make_service(max_attempts=2)
    a, _ = tenants
    await endpoint_for(service, a, receiver.url())
    receiver.default = 500
    with tenant_context(a):
        (delivery_id,) = await service.emit("inventory.low_stock", {"sku": "A-1"})
    await jobs.join()
    (letter,) = (await jobs.dead_letters())[0]
    receiver.default = 204
    with tenant_context(a):
        requeued = await service.requeue(delivery_id)
    assert (requeued.status, requeued.attempts) == ("pending", 0)
    await jobs.join()
    assert (await delivery(service, a, delivery_id)).status == "delivered"
    found = await jobs.dead_letter(letter.id)
    assert found is not None and found.requeued_at is not None  # marked as every requeue is
    assert len(hooks.dead) == 1


async def test_redirects_are_not_followed_and_count_as_failures(
    make_service: MakeService, jobs: JobRunner, tenants: tuple[TenantRef, TenantRef], receiver: Receiver
) -> None:
    service = make_service(max_attempts=1)
    a, _ = tenants
    await endpoint_for(service, a, receiver.url("/redirect"))
    with tenant_context(a):
        (delivery_id,) = await service.emit("order.created", {})
    await jobs.join()
    assert len(receiver.on("/redirect")) == 1
    assert receiver.on("/other") == []
    failed = await delivery(service, a, delivery_id)
    assert (failed.status, failed.attempts, failed.last_status_code) == ("dead", 1, 302)
    assert "redirect" in (failed.last_error or "")


async def test_an_endless_response_body_is_cut_off(
    make_service: MakeService, jobs: JobRunner, tenants: tuple[TenantRef, TenantRef], receiver: Receiver
) -> None:
    service = make_service(timeout=5.0)
    a, _ = tenants
    await endpoint_for(service, a, receiver.url("/huge"))
    with tenant_context(a):
        (delivery_id,) = await service.emit("order.created", {})
    started = time.monotonic()
    await jobs.join()
    assert time.monotonic() - started < 4.0  # well before the timeout: it stopped reading
    done = await delivery(service, a, delivery_id)
    assert (done.status, done.last_status_code) == ("delivered", 200)
    await asyncio.sleep(0.2)
    assert receiver.huge_bytes_sent < 64 * 1024 * 1024  # the stream was dropped, not drained


async def test_a_stalled_receiver_times_out(
    make_service: MakeService, jobs: JobRunner, tenants: tuple[TenantRef, TenantRef], receiver: Receiver
) -> None:
    service = make_service(timeout=0.5, max_attempts=1)
    a, _ = tenants
    await endpoint_for(service, a, receiver.url("/stall"))
    with tenant_context(a):
        (delivery_id,) = await service.emit("order.created", {})
    started = time.monotonic()
    await jobs.join()
    assert time.monotonic() - started < 3.0
    failed = await delivery(service, a, delivery_id)
    assert (failed.status, failed.last_status_code) == ("dead", None)
    assert "timed out" in (failed.last_error or "")


async def test_urls_are_checked_again_at_send_time(
    make_service: MakeService, jobs: JobRunner, tenants: tuple[TenantRef, TenantRef], receiver: Receiver
) -> None:
    saving = make_service()  # 127.0.0.1 allowed when the endpoint is saved...
    a, _ = tenants
    await endpoint_for(saving, a, receiver.url())
    sending = make_service(allow_hosts=[], max_attempts=1)  # ...but no longer when it is sent
    with tenant_context(a):
        (delivery_id,) = await sending.emit("order.created", {})
    await jobs.join()
    assert receiver.hits == []
    failed = await delivery(sending, a, delivery_id)
    assert failed.last_status_code is None
    assert "refused" in (failed.last_error or "")
    assert receiver.url() not in (failed.last_error or "")


async def test_a_name_is_resolved_once_and_the_checked_address_is_used(
    make_service: MakeService,
    jobs: JobRunner,
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

    service = make_service(allow_hosts=[], timeout=1.0, max_attempts=1)
    a, _ = tenants
    await endpoint_for(service, a, f"http://rebind.example.com:{receiver.port}/hook")
    monkeypatch.setattr(loop, "getaddrinfo", rebinding)
    with tenant_context(a):
        (delivery_id,) = await service.emit("order.created", {})
    await jobs.join()
    monkeypatch.undo()
    assert calls == ["rebind.example.com"]  # one lookup per attempt: the connection used its answer
    assert receiver.hits == []  # the loopback answer never reached
    failed = await delivery(service, a, delivery_id)
    assert failed.status == "dead" and failed.last_status_code is None


async def test_allow_listed_names_are_pinned_too(
    make_service: MakeService,
    jobs: JobRunner,
    tenants: tuple[TenantRef, TenantRef],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    async def fake(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(ssrf_module, "_getaddrinfo", fake)
    service = make_service(allow_hosts=["receiver.test"])
    a, _ = tenants
    await endpoint_for(service, a, f"http://receiver.test:{receiver.port}/hook")
    with tenant_context(a):
        (delivery_id,) = await service.emit("order.created", {})
    await jobs.join()
    # "receiver.test" has no DNS record: only the checked address can have been used
    assert (await delivery(service, a, delivery_id)).status == "delivered"
    assert calls == ["receiver.test"]
    assert receiver.on("/hook")[0].headers["Host"] == f"receiver.test:{receiver.port}"


async def test_an_unreachable_receiver_fails_cleanly(
    make_service: MakeService, jobs: JobRunner, tenants: tuple[TenantRef, TenantRef]
) -> None:
    from tests.conftest import free_port

    service = make_service(max_attempts=1)
    a, _ = tenants
    await endpoint_for(service, a, f"http://127.0.0.1:{free_port()}/hook?token=s3cr3t")
    with tenant_context(a):
        (delivery_id,) = await service.emit("order.created", {})
    await jobs.join()
    failed = await delivery(service, a, delivery_id)
    assert failed.status == "dead" and failed.last_error
    assert "s3cr3t" not in failed.last_error
    (letter,) = (await jobs.dead_letters())[0]
    assert "s3cr3t" not in letter.error


async def test_deliveries_of_every_tenant_go_out_in_their_own_tenant(
    make_service: MakeService, jobs: JobRunner, tenants: tuple[TenantRef, TenantRef], receiver: Receiver
) -> None:
    service = make_service()
    a, b = tenants
    _, secret_a = await endpoint_for(service, a, receiver.url("/hook"))
    _, secret_b = await endpoint_for(service, b, receiver.url("/hook"))
    with tenant_context(a):
        await service.emit("order.created", {"tenant": "a"})
    with tenant_context(b):
        await service.emit("order.created", {"tenant": "b"})
    await jobs.join()
    assert len(receiver.on("/hook")) == 2
    for hit in receiver.on("/hook"):
        owner = json.loads(hit.body)["data"]["tenant"]
        verify(secret_a if owner == "a" else secret_b, hit.headers, hit.body)
    with tenant_context(a):
        assert [d.status for d in await service.list_deliveries()] == ["delivered"]


# --------------------------------------------------------------------------- #
# The outbox relay: nothing is lost between the database and the queue
# --------------------------------------------------------------------------- #


class HeldBroker(InMemoryBroker):
    """Keeps what is sent instead of running it (a queue nobody consumes), or refuses it when ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[BrokerMessage] = []
        self.down = False

    async def kick(self, message: BrokerMessage) -> None:
        if self.down:
            raise ConnectionError("broker down")
        self.sent.append(message)


async def test_a_delivery_whose_job_never_reached_the_queue_is_relayed(
    database: Database, tenants: tuple[TenantRef, TenantRef], receiver: Receiver, jobs: JobRunner
) -> None:
    held = HeldBroker()
    holding = JobRunner(database=database, metrics=Metrics(), broker=held)
    await holding.startup()
    try:
        queued = WebhookService(database, holding, allow_hosts=["127.0.0.1"], relay_after=0.0)
        a, _ = tenants
        await endpoint_for(queued, a, receiver.url())
        held.down = True
        with tenant_context(a):
            (delivery_id,) = await queued.emit("order.created", {})  # committed; the job is not queued
        await holding.join()
        assert held.sent == []
        assert (await delivery(queued, a, delivery_id)).status == "pending"
        held.down = False
        assert await queued.delivery.relay() == 1
        (message,) = held.sent
        assert message.task_name == DELIVER and message.labels["tenant_id"] == str(a.id)
    finally:
        await holding.shutdown()


async def test_the_relay_runs_in_process_and_delivers(
    make_service: MakeService,
    jobs: JobRunner,
    tenants: tuple[TenantRef, TenantRef],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await jobs.shutdown()
    service = make_service(relay_after=0.0, relay_interval=0.05)
    a, _ = tenants
    await endpoint_for(service, a, receiver.url())
    refused: list[str] = []

    async def no_queue(self: Any, delivery_ids: list[uuid.UUID]) -> None:
        refused.extend(str(d) for d in delivery_ids)

    monkeypatch.setattr(type(service.delivery), "enqueue", no_queue)
    await jobs.startup()  # starts the periodic relay in process (the embedded default)
    with tenant_context(a):
        (delivery_id,) = await service.emit("order.created", {})
    assert refused == [str(delivery_id)]
    for _ in range(100):
        if receiver.hits:
            break
        await asyncio.sleep(0.05)
    await jobs.join()
    assert (await delivery(service, a, delivery_id)).status == "delivered"


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
async def test_concurrent_relays_queue_each_delivery_once(
    db_url: str, database: Database, tenants: tuple[TenantRef, TenantRef], receiver: Receiver
) -> None:
    held = HeldBroker()
    holding = JobRunner(database=database, metrics=Metrics(), broker=held)
    await holding.startup()
    others = [Database(db_url) for _ in range(2)]
    try:
        first = WebhookService(database, holding, allow_hosts=["127.0.0.1"], relay_after=0.0)
        a, b = tenants
        await endpoint_for(first, a, receiver.url())
        await endpoint_for(first, b, receiver.url())
        emitted: list[uuid.UUID] = []
        for tenant in (a, b):
            with tenant_context(tenant):
                for n in range(12):
                    emitted += await first.emit("order.created", {"n": n})
        await holding.join()
        held.sent.clear()
        relays = [WebhookService(db, holding, relay_after=60.0) for db in (database, *others)]
        counts = await asyncio.gather(*(service.delivery.relay(limit=5) for service in relays))
        counts += await asyncio.gather(*(service.delivery.relay() for service in relays))
    finally:
        for db in others:
            await db.dispose()
        await holding.shutdown()
    assert sum(counts) == len(emitted) == 24
    ids = [message.message for message in held.sent]
    assert len(ids) == 24
    queued = {json.loads(raw)["args"][0] for raw in ids}
    assert queued == {str(d) for d in emitted}
