"""Background jobs: tenant context in tasks, retries with backoff, dead letters, admin API, CLI."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from tenantkit import TenantKit, hookimpl
from tenantkit.admin import create_superadmin, create_tenant, create_user
from tenantkit.context import current_request_id, current_tenant, request_id_context, tenant_context
from tenantkit.jobs import backoff_delay
from tenantkit.webhooks.models import WebhookEndpoint
from tests.helpers import Api, assert_problem


@contextlib.asynccontextmanager
async def worker(kit: TenantKit) -> AsyncIterator[None]:
    """Run the kit's job worker in this process (a no-op wait on the in-memory broker)."""
    stop = asyncio.Event()
    task = asyncio.create_task(kit.jobs.run_worker(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def wait_for(probe: Callable[[], Any], timeout: float = 8.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.02)


class Recorder:
    """A plugin recording the job hooks."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str | None, bool | None]] = []

    @hookimpl
    def tenantkit_on_job_start(self, task_name: str, tenant_id: str | None, labels: dict[str, Any]) -> None:
        self.events.append(("before", task_name, tenant_id, None))

    @hookimpl
    def tenantkit_on_job_success(self, task_name: str, tenant_id: str | None, labels: dict[str, Any]) -> None:
        self.events.append(("after", task_name, tenant_id, None))

    @hookimpl
    def tenantkit_on_job_failure(
        self, task_name: str, tenant_id: str | None, labels: dict[str, Any], error: str, dead: bool
    ) -> None:
        self.events.append(("failed", task_name, tenant_id, dead))


class TaskPlugin:
    """Registers a task through the ``tenantkit_register_tasks`` hook."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def tenantkit_register_tasks(self, kit: TenantKit) -> None:
        @kit.jobs.task(name="plugin.ping")
        async def ping(word: str) -> None:
            self.calls.append(word)


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 30.0)]:
        delays = [backoff_delay(attempt, 1.0, 30.0) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jitter


async def test_tenant_and_request_id_travel_into_the_task(kit_factory: Callable[..., TenantKit]) -> None:
    recorder = Recorder()
    plugin = TaskPlugin()
    kit = kit_factory(plugins=[recorder, plugin])
    await kit.startup()
    tenant = await create_tenant(kit, "Acme")
    seen: list[tuple[Any, ...]] = []

    @kit.jobs.task(name="test.inspect")
    async def look(label: str) -> None:
        async with kit.database.session() as session:  # TenantScoped: raises without a tenant
            endpoints = await session.scalar(select(func.count()).select_from(WebhookEndpoint))
        ref = current_tenant()
        seen.append(
            (label, ref.id if ref else None, ref.slug if ref else None, current_request_id(), endpoints)
        )

    async with worker(kit):
        with tenant_context(tenant), request_id_context("req-123"):
            job_id = await kit.jobs.enqueue("test.inspect", "hello")
            await kit.jobs.enqueue("plugin.ping", "pong")
        assert current_tenant() is None
        assert await wait_for(lambda: seen and plugin.calls)
    assert job_id
    assert seen == [("hello", tenant.id, tenant.slug, "req-123", 0)]
    assert plugin.calls == ["pong"]
    assert ("before", "test.inspect", str(tenant.id), None) in recorder.events
    assert ("after", "test.inspect", str(tenant.id), None) in recorder.events
    metrics = kit.metrics.render().decode()
    assert job_count(metrics, "queued") == 2.0
    assert job_count(metrics, "succeeded") == 2.0


async def test_failing_job_is_retried_then_dead_lettered_and_can_be_requeued(
    kit_factory: Callable[..., TenantKit], settings_factory: Callable[..., Any]
) -> None:
    recorder = Recorder()
    kit = kit_factory(settings_factory(job_retry_base_seconds=0.02, job_max_attempts=5), plugins=[recorder])
    await kit.startup()
    tenant = await create_tenant(kit, "Flaky")
    attempts: list[float] = []
    broken = True

    @kit.jobs.task(name="test.flaky", max_attempts=3)
    async def flaky(order_id: str, *, note: str = "") -> None:
        attempts.append(asyncio.get_running_loop().time())
        if broken:
            raise ConnectionError("service down")

    async with worker(kit):
        with tenant_context(tenant):
            await kit.jobs.enqueue(flaky, "o-1", note="n")
        rows = await wait_for(lambda: _dead(kit))
        assert len(rows) == 1
        dead = kit.jobs.dead_letter_json(rows[0])
        assert dead["task_name"] == "test.flaky"
        assert dead["tenant_id"] == str(tenant.id)
        assert dead["attempts"] == 3 and len(attempts) == 3
        assert dead["args"] == ["o-1"] and dead["kwargs"] == {"note": "n"}
        assert dead["error"] == "ConnectionError: service down"
        assert attempts[2] - attempts[1] >= 0.015  # backoff: base 0.02 * 2 / 2 at least
        failed = [e for e in recorder.events if e[0] == "failed"]
        assert [e[3] for e in failed] == [False, False, True]

        broken = False
        await kit.jobs.requeue(rows[0].id)
        assert await wait_for(lambda: len(attempts) == 4)
        assert await wait_for(lambda: ("after", "test.flaky", str(tenant.id), None) in recorder.events)
    (row,) = await _dead(kit)
    assert row.requeued_at is not None
    metrics = kit.metrics.render().decode()
    assert job_count(metrics, "failed") == 3.0
    assert job_count(metrics, "dead_lettered") == 1.0


def job_count(metrics: str, state: str) -> float:
    """The ``tenantkit_jobs_total`` sample for ``state`` (whatever its label is called)."""
    found = re.search(r'^tenantkit_jobs_total\{\w+="' + state + r'"\} ([0-9.e+]+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0


async def _dead(kit: TenantKit) -> list[Any]:
    rows, _ = await kit.jobs.dead_letters()
    return rows


async def test_dead_letter_endpoints_are_scoped_and_guarded(api: Api) -> None:
    kit = api.kit
    boss = await api.register("boss@example.com")
    await api.register("rival@example.com")
    tenant = await kit.directory.get(uuid.UUID(boss["tenant"]["id"]))
    assert tenant is not None
    await create_user(kit, "worker@example.com", "correct horse battery", tenant=tenant, role="USER")
    await create_superadmin(kit, "ops@example.com", "correct horse battery")

    @kit.jobs.task(name="test.always_fails", max_attempts=1)
    async def always_fails() -> None:
        raise ValueError("nope")

    async with worker(kit):
        with tenant_context(tenant):
            await kit.jobs.enqueue("test.always_fails")
        await kit.jobs.enqueue("test.always_fails")  # a platform job, no tenant
        assert await wait_for(lambda: _count(kit, 2))

        admin = api.bearer(await api.login("boss@example.com"))
        listed = await api.client.get("/jobs/dead-letters", headers=admin)
        assert listed.status_code == 200, listed.text
        body = listed.json()
        assert [item["tenant_id"] for item in body["items"]] == [str(tenant.id)]
        assert body["next_cursor"] is None
        own_id = body["items"][0]["id"]

        rival = api.bearer(await api.login("rival@example.com"))
        assert (await api.client.get("/jobs/dead-letters", headers=rival)).json()["items"] == []
        assert_problem(await api.client.post(f"/jobs/dead-letters/{own_id}/requeue", headers=rival), 404)

        user = api.bearer(await api.login("worker@example.com", "correct horse battery"))
        assert_problem(await api.client.get("/jobs/dead-letters", headers=user), 403)
        assert_problem(await api.client.get("/jobs/dead-letters"), 401)

        ops = api.bearer(await api.login("ops@example.com", "correct horse battery"))
        everything = (await api.client.get("/jobs/dead-letters?limit=1", headers=ops)).json()
        assert len(everything["items"]) == 1 and everything["next_cursor"]
        rest = await api.client.get(
            "/jobs/dead-letters", params={"cursor": everything["next_cursor"]}, headers=ops
        )
        tenants = {everything["items"][0]["tenant_id"], rest.json()["items"][0]["tenant_id"]}
        assert tenants == {None, str(tenant.id)}

        requeued = await api.client.post(f"/jobs/dead-letters/{own_id}/requeue", headers=admin)
        assert requeued.status_code == 202, requeued.text
        assert requeued.json()["id"] == own_id
        assert await wait_for(lambda: _count(kit, 3))  # it failed again: a new dead letter


async def _count(kit: TenantKit, expected: int) -> bool:
    return len(await _dead(kit)) >= expected


def test_cli_lists_and_requeues_dead_letters(
    sqlite_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tenantkit.cli import main
    from tenantkit.jobs.models import NIL_TENANT, DeadLetter
    from tenantkit.settings import Settings

    monkeypatch.setenv("TENANTKIT_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("TENANTKIT_ENV", "development")
    monkeypatch.setenv("TENANTKIT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TENANTKIT_LOG_LEVEL", "ERROR")
    dead_id = uuid.uuid4()

    async def seed() -> None:
        from tenantkit.tenancy import tenant_scope

        kit = TenantKit(Settings.load())
        try:
            with tenant_scope(NIL_TENANT):  # dead letters are tenant-owned
                async with kit.database.session() as session, session.begin():
                    session.add(
                        DeadLetter(
                            tenant_id=NIL_TENANT,
                            id=dead_id,
                            task_name="tenantkit.send_mail",
                            args={
                                "args": [{"to": "a@example.com", "subject": "s", "body": "b"}],
                                "kwargs": {},
                            },
                            labels={"attempt": 5},
                            error="OSError: refused",
                            attempts=5,
                        )
                    )
        finally:
            await kit.database.dispose()

    asyncio.run(seed())
    assert main(["jobs", "dead-letters", "list"]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    listed = json.loads(line)
    assert listed["id"] == str(dead_id) and listed["tenant_id"] is None and listed["attempts"] == 5
    assert main(["jobs", "dead-letters", "requeue", str(dead_id)]) == 0
    assert f"requeued {dead_id}" in capsys.readouterr().out
