"""The kit's two passes answer exactly as the single-concern middleware stacked by hand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tenantkit import TenantKit
from tenantkit.auth.middleware import AuthenticationMiddleware
from tenantkit.observability.middleware import RequestContextMiddleware
from tenantkit.pipeline import EdgeMiddleware, IdentityMiddleware
from tenantkit.routing import public_paths
from tenantkit.security import rate_limit_middleware, security_middleware
from tenantkit.tenancy.middleware import TenantMiddleware
from tenantkit.tenancy.resolvers import build_resolvers
from tests.helpers import Api, serve

ORIGIN = "https://app.example.com"


async def boom(request: Request) -> JSONResponse:
    raise RuntimeError("internals")


def by_hand(kit: TenantKit) -> list[Middleware]:
    """The stack the kit used to install: one middleware per concern."""
    s = kit.settings
    resolvers = build_resolvers(
        s.tenant_resolvers,
        header=s.tenant_header,
        base_domain=s.tenant_base_domain,
        path_prefix=s.tenant_path_prefix,
        hook=kit.hook,
    )
    return [
        Middleware(RequestContextMiddleware, trusted_proxies=s.trusted_proxies, metrics=kit.metrics),
        *security_middleware(s),
        Middleware(
            AuthenticationMiddleware,
            authenticator=kit.authenticator,
            access=kit.access,
            optional_paths=public_paths(kit.routes),
        ),
        rate_limit_middleware(s, kit.rate_limiter),
        Middleware(TenantMiddleware, directory=kit.directory, resolvers=resolvers),
    ]


def shape(response: httpx.Response) -> tuple[int, str, frozenset[str]]:
    names = frozenset(response.headers.keys()) - {"content-length"}
    return response.status_code, response.headers.get("content-type", ""), names


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_the_kit_installs_two_passes(kit_factory: Callable[..., TenantKit]) -> None:
    kinds = [m.cls for m in kit_factory().middleware]
    assert kinds == [EdgeMiddleware, IdentityMiddleware]


async def test_two_passes_answer_as_the_stack_of_single_concern_middleware(
    kit_factory: Callable[..., TenantKit], settings_factory: Callable[..., Any]
) -> None:
    from tenantkit.mail import MemoryMailer

    kit = kit_factory(
        settings_factory(cors_origins=[ORIGIN], allowed_hosts=["testserver"], max_body_bytes=1024),
        mailer=MemoryMailer(),
    )
    extra = [Route("/boom", boom)]
    piped = kit.build_app(extra)
    stacked = Starlette(
        routes=[*extra, *kit.routes],
        middleware=by_hand(kit),
        exception_handlers=kit.exception_handlers,
    )
    async with serve(piped) as one, serve(stacked) as two:
        api = Api(one, kit, MemoryMailer())
        await api.register("pipe@example.com")
        bearer = api.bearer(await api.login("pipe@example.com"))
        requests: list[tuple[str, str, dict[str, str], bytes | None]] = [
            ("GET", "/auth/me", {}, None),
            ("GET", "/auth/me", bearer, None),
            ("GET", "/auth/me", {**bearer, "Origin": ORIGIN}, None),
            ("GET", "/auth/me", {**bearer, "X-Tenant-ID": " "}, None),
            ("GET", "/auth/me", {**bearer, "X-Tenant-ID": "no-such-tenant"}, None),
            (
                "GET",
                "/auth/me",
                {"Authorization": "Bearer not-a-token", "Origin": "https://evil.example"},
                None,
            ),
            ("POST", "/auth/login", {"Content-Type": "application/json"}, b"{" + b" " * 2048 + b"}"),
            ("OPTIONS", "/auth/me", {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}, None),
            (
                "OPTIONS",
                "/auth/me",
                {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
                None,
            ),
            ("GET", "/health", {"Host": "evil.example"}, None),
            ("GET", "/nowhere", bearer, None),
        ]
        for method, path, headers, body in requests:
            a = await one.request(method, path, headers=headers, content=body)
            b = await two.request(method, path, headers=headers, content=body)
            assert shape(a) == shape(b), (method, path, headers, a.text, b.text)
            assert a.content == b.content or a.headers.get("content-type") == "application/json", (
                path,
                a.text,
            )
            assert a.headers["x-request-id"] and a.headers["x-content-type-options"] == "nosniff"

        # An unhandled error: the same problem+json, and now security headers on it too.
        a = await one.get("/boom")
        b = await two.get("/boom")
        assert (a.status_code, a.content) == (b.status_code, b.content)
        assert set(b.headers.keys()) <= set(a.headers.keys())
        assert a.headers["x-request-id"] and a.headers["x-content-type-options"] == "nosniff"
