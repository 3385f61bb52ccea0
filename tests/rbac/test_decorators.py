"""requires_permissions / requires_roles / authorize through HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tenantkit import ConfigurationError, TenantKit, hookimpl
from tenantkit.mail import MemoryMailer
from tenantkit.rbac import authorize, requires_permissions, requires_roles
from tests.helpers import Api, assert_problem, serve


@requires_permissions("reports.read")
async def read_reports(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


@requires_permissions("reports.read", "reports.export")
async def export_reports(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


@requires_permissions("reports.export", "reports.read", any_of=True)
async def either(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


@requires_roles("ADMIN")
async def admins_only(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


@requires_roles("USER")
async def users_and_up(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


class Reports(HTTPEndpoint):
    @requires_permissions("reports.read")
    async def get(self, request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    @requires_permissions("reports.export")
    async def post(self, request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})


async def owned(request: Request) -> JSONResponse:
    await authorize(request, "reports.read", {"owner": request.query_params.get("owner")})
    return JSONResponse({"ok": True})


class OwnerPolicy:
    @hookimpl
    def tenantkit_authorize(self, principal: Any, permission: str, resource: Any) -> bool | None:
        if isinstance(resource, dict) and resource.get("owner") == "someone-else":
            return False
        return None


ROUTES = [
    Route("/reports", read_reports),
    Route("/reports/export", export_reports),
    Route("/reports/either", either),
    Route("/admins", admins_only),
    Route("/users-up", users_and_up),
    Route("/cbv", Reports),
    Route("/owned", owned),
]
PERMISSIONS = [("reports.read", "Read reports"), ("reports.export", "Export reports")]


async def test_guards(kit_factory: Callable[..., TenantKit]) -> None:
    kit = kit_factory(
        permissions=PERMISSIONS,
        user_permissions=["reports.read"],
        plugins=[OwnerPolicy()],
        mailer=MemoryMailer(),
    )
    async with serve(kit.build_app(ROUTES), base_url="https://testserver") as client:
        api = Api(client, kit, MemoryMailer())
        owner = await api.register("owner@example.com")
        admin = api.bearer(await api.login("owner@example.com"))
        invite = await client.post(
            "/users/invitations", json={"email": "user@example.com", "role": "USER"}, headers=admin
        )
        await client.post(
            "/auth/register",
            json={
                "email": "user@example.com",
                "password": "password123",
                "invite_token": invite.json()["invite_token"],
            },
        )
        user = api.bearer(await api.login("user@example.com", "password123"))
        expectations = {
            "/reports": (200, 200),
            "/reports/export": (200, 403),
            "/reports/either": (200, 200),
            "/admins": (200, 403),
            "/users-up": (200, 200),
            "/cbv": (200, 200),
        }
        for path, (as_admin, as_user) in expectations.items():
            assert (await client.get(path, headers=admin)).status_code == as_admin, path
            assert (await client.get(path, headers=user)).status_code == as_user, path
            assert_problem(await client.get(path), 401)
        assert (await client.post("/cbv", headers=admin)).status_code == 200
        assert_problem(await client.post("/cbv", headers=user), 403)
        assert (await client.get("/owned?owner=me", headers=user)).status_code == 200
        assert_problem(await client.get("/owned?owner=someone-else", headers=admin), 403)
        assert owner["role"] == "ADMIN"


async def test_unregistered_permission_fails_at_startup(kit_factory: Callable[..., TenantKit]) -> None:
    @requires_permissions("never.registered")
    async def endpoint(request: Request) -> JSONResponse:
        return JSONResponse({})

    app = kit_factory().build_app([Route("/x", endpoint)])
    with pytest.raises(ConfigurationError, match=r"never\.registered"):
        async with app.router.lifespan_context(app):
            pass


def test_guard_needs_an_async_endpoint_with_a_request() -> None:
    with pytest.raises(TypeError):

        @requires_permissions("users.read")
        async def no_request(thing: object) -> None: ...

    with pytest.raises(TypeError):

        @requires_permissions("users.read")
        def sync(request: Request) -> None: ...  # type: ignore[arg-type]


def test_guard_marks_the_endpoint_for_openapi() -> None:
    assert export_reports.__tenantkit_guard__["permissions"] == ["reports.export", "reports.read"]  # type: ignore[attr-defined]
    assert either.__tenantkit_guard__["any_of"] is True  # type: ignore[attr-defined]
