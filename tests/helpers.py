"""Small helpers shared by tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette

from tenantkit import TenantKit
from tenantkit.mail import MemoryMailer


@contextlib.asynccontextmanager
async def serve(app: Starlette, base_url: str = "http://testserver") -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app``'s lifespan and give an HTTP client speaking to it in process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    """Assert an RFC 9457 problem response with ``status`` and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= set(body)
    assert "Traceback" not in response.text
    return body


@dataclass
class Api:
    """A client plus the kit behind it, with shortcuts for common flows."""

    client: httpx.AsyncClient
    kit: TenantKit
    mailer: MemoryMailer
    passwords: dict[str, str] = field(default_factory=dict)

    async def register(
        self, email: str, password: str = "correct horse battery", **extra: Any
    ) -> dict[str, Any]:
        body = {"email": email, "password": password, **extra}
        if "tenant_name" not in extra and "invite_token" not in extra:
            body["tenant_name"] = f"Tenant of {email}"
        headers = extra.pop("headers", None) if "headers" in extra else None
        body.pop("headers", None)
        response = await self.client.post("/auth/register", json=body, headers=headers)
        assert response.status_code == 201, response.text
        self.passwords[email] = password
        return dict(response.json())

    async def login(self, email: str, password: str | None = None, **headers: str) -> dict[str, Any]:
        response = await self.client.post(
            "/auth/login",
            json={"email": email, "password": password or self.passwords[email]},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    @staticmethod
    def bearer(tokens: dict[str, Any]) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens['access_token']}"}


async def eventually(probe: Any, expected: int, *, timeout: float = 2.0) -> Any:
    """Repeat ``probe()`` (an HTTP call) until its status is ``expected`` or ``timeout`` passes.

    Cross-instance invalidation travels over pub/sub: another process sees it
    after the delivery latency (well under a millisecond on loopback), not in
    zero time.
    """
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while True:
        response = await probe()
        if response.status_code == expected or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.005)


def record_queries(database: Any) -> dict[int, list[str]]:
    """Queries sent per driver connection from now on (asyncpg query loggers, attached at checkout)."""
    from collections import defaultdict

    from sqlalchemy import event

    sent: dict[int, list[str]] = defaultdict(list)
    hooked: set[int] = set()

    def checkout(_dbapi: Any, entry: Any, _proxy: Any) -> None:
        driver = entry.driver_connection
        if id(driver) not in hooked:
            hooked.add(id(driver))
            driver.add_query_logger(lambda record: sent[id(driver)].append(record.query))

    event.listen(database.engine.sync_engine, "checkout", checkout)
    return sent
