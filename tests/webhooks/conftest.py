"""Fixtures for the webhooks suite: databases, two tenants, local receivers, services on a job runner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tenantkit.db.engine import Database
from tenantkit.jobs import JobRunner
from tenantkit.observability.metrics import Metrics
from tenantkit.plugins import hookimpl
from tenantkit.plugins.manager import call_event, create_plugin_manager
from tenantkit.webhooks import WebhookService, WebhookVerificationError, verify
from tests.conftest import free_port


@dataclass
class Hit:
    """One request a receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool | None


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 with scripted answers.

    ``/hook`` answers the next status of ``script`` (then ``default``);
    ``/redirect`` answers 302 to ``/other``; ``/huge`` streams an endless 200
    body; ``/stall`` never answers. Every request is kept in ``hits``.
    """

    port: int
    script: list[int] = field(default_factory=list)
    default: int = 200
    delay: float = 0.0
    secret: str | None = None
    hits: list[Hit] = field(default_factory=list)
    huge_bytes_sent: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/hook") -> str:
        return self.base + path

    def on(self, path: str) -> list[Hit]:
        return [hit for hit in self.hits if hit.path == path]

    async def _record(self, request: web.Request) -> Hit:
        body = await request.read()
        verified: bool | None = None
        if self.secret is not None:
            try:
                verify(self.secret, request.headers, body)
                verified = True
            except WebhookVerificationError:
                verified = False
        hit = Hit(request.path, dict(request.headers), body, verified)
        self.hits.append(hit)
        return hit

    async def hook(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.script.pop(0) if self.script else self.default
        return web.Response(status=status, text="ok")

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return web.Response(status=302, headers={"Location": "/other"})

    async def other(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return web.Response(status=200)

    async def huge(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        response = web.StreamResponse(status=200)
        response.content_length = 10 * 1024**3  # claims 10 GiB, streams until the client leaves
        await response.prepare(request)
        chunk = b"x" * 65536
        try:
            for _ in range(160_000):
                await response.write(chunk)
                self.huge_bytes_sent += len(chunk)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return response

    async def stall(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        await asyncio.sleep(30)
        return web.Response(status=200)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A local webhook receiver on a free loopback port."""
    port = free_port()
    recv = Receiver(port)
    app = web.Application()
    app.router.add_post("/hook", recv.hook)
    app.router.add_post("/redirect", recv.redirect)
    app.router.add_route("*", "/other", recv.other)
    app.router.add_post("/huge", recv.huge)
    app.router.add_post("/stall", recv.stall)
    runner = web.AppRunner(app, shutdown_timeout=0.5, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield recv
    finally:
        await runner.cleanup()


class HookRecorder:
    """A plugin keeping the webhook events it gets (one sync, one async hook)."""

    def __init__(self) -> None:
        self.delivered: list[dict[str, Any]] = []
        self.dead: list[dict[str, Any]] = []

    @hookimpl
    def tenantkit_on_webhook_delivered(
        self, endpoint_id: str, event_id: str, status: int, attempt: int
    ) -> None:
        self.delivered.append(
            {"endpoint_id": endpoint_id, "event_id": event_id, "status": status, "attempt": attempt}
        )

    @hookimpl
    async def tenantkit_on_webhook_dead_lettered(
        self, endpoint_id: str, event_id: str, error: str, attempts: int
    ) -> None:
        self.dead.append(
            {"endpoint_id": endpoint_id, "event_id": event_id, "error": error, "attempts": attempts}
        )


@pytest.fixture
def hooks() -> HookRecorder:
    return HookRecorder()


class HookEvents:
    """The ``events.emit`` collaborator over a plugin manager."""

    def __init__(self, *plugins: object) -> None:
        self.hook = create_plugin_manager(plugins, autoload=False).hook

    async def emit(self, name: str, /, **kwargs: Any) -> list[Any]:
        return await call_event(getattr(self.hook, f"tenantkit_{name}"), **kwargs)


@pytest.fixture
async def jobs(database: Database, hooks: HookRecorder) -> AsyncIterator[JobRunner]:
    """A started in-memory job runner that retries at once (the embedded default)."""
    runner = JobRunner(
        database=database, metrics=Metrics(), events=HookEvents(hooks), retry_base=0.0, retry_cap=0.0
    )
    await runner.startup()
    try:
        yield runner
    finally:
        await runner.shutdown()


MakeService = Callable[..., WebhookService]


@pytest.fixture
def make_service(database: Database, jobs: JobRunner, hooks: HookRecorder) -> MakeService:
    """Services on ``database`` and ``jobs`` that allow 127.0.0.1 and report to ``hooks``.

    The last one made delivers (it registered the delivery task last).
    """

    def make(**options: Any) -> WebhookService:
        target = options.pop("database", database)
        runner = options.pop("jobs", jobs)
        values: dict[str, Any] = {
            "allow_hosts": ["127.0.0.1"],
            "timeout": 5.0,
            "max_attempts": 3,
            "events": HookEvents(hooks),
        }
        values.update(options)
        return WebhookService(target, runner, **values)

    return make
