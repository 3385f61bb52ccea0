"""Helpers for the hardening tests: an app with a few extra routes and a client per address."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tenantkit import TenantKit
from tenantkit.security import rate_limit

Written = list[bytes]


def extra_routes(written: Written) -> list[Route]:
    """``/ping`` (anonymous), ``/echo`` (records the body it read), ``/framed``, ``/limited``."""

    async def ping(request: Request) -> Response:
        return JSONResponse({"pong": True})

    async def echo(request: Request) -> Response:
        body = await request.body()
        written.append(body)
        return JSONResponse({"size": len(body)})

    async def framed(request: Request) -> Response:
        return JSONResponse(
            {}, headers={"X-Frame-Options": "SAMEORIGIN", "Content-Security-Policy": "sandbox"}
        )

    @rate_limit("2/minute", key="ip")
    async def limited(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return [
        Route("/ping", ping, methods=["GET"]),
        Route("/echo", echo, methods=["POST"]),
        Route("/framed", framed, methods=["GET"]),
        Route("/limited", limited, methods=["GET"]),
    ]


class Served:
    """A started app plus a way to open clients that come from other addresses."""

    def __init__(self, kit: TenantKit, app: Any, stack: contextlib.AsyncExitStack) -> None:
        self.kit = kit
        self.app = app
        self.stack = stack
        self.written: Written = []

    async def client(
        self, address: str = "203.0.113.7", base_url: str = "https://testserver"
    ) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(address, 50000))
        return await self.stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url=base_url))


@pytest.fixture
async def served(
    kit_factory: Callable[..., TenantKit], settings_factory: Callable[..., Any]
) -> AsyncIterator[Callable[..., Any]]:
    """``await served(**settings)`` → ``Served`` for a kit built with those settings."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**overrides: Any) -> Served:
            kit = kit_factory(settings_factory(**overrides))
            written: Written = []
            app = kit.build_app(extra_routes(written))
            await stack.enter_async_context(app.router.lifespan_context(app))
            result = Served(kit, app, stack)
            result.written = written
            return result

        yield make


async def register_and_login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    """Register ``email`` with a new tenant and return bearer headers."""
    password = "correct horse battery"
    response = await client.post(
        "/auth/register", json={"email": email, "password": password, "tenant_name": f"T {email}"}
    )
    assert response.status_code == 201, response.text
    response = await client.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
