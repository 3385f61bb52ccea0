"""Tenant resolution over HTTP: header, subdomain, path, token claim, plugin; outcomes and order."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tenantkit import Settings, TenantKit, current_tenant, hookimpl
from tenantkit.admin import create_superadmin
from tenantkit.mail import MemoryMailer
from tenantkit.rbac import request_tenant, requires_auth, requires_permissions
from tests.helpers import Api, assert_problem, serve


async def whoami(request: Request) -> JSONResponse:
    tenant = request_tenant(request)
    context = current_tenant()
    assert context == tenant  # the contextvar mirrors request.state
    return JSONResponse({"slug": tenant.slug, "id": str(tenant.id), "path": request.url.path})


@requires_auth()
async def protected(request: Request) -> JSONResponse:
    return await whoami(request)


@requires_permissions("users.read")
async def admins_only(request: Request) -> JSONResponse:
    return await whoami(request)


ROUTES = [
    Route("/public/tenant", whoami),
    Route("/protected/tenant", protected),
    Route("/protected/admin", admins_only),
]


class BrandPlugin:
    """Names the tenant from an ``X-Brand`` header (a stand-in for any custom rule)."""

    @hookimpl
    def tenantkit_resolve_tenant(self, request: Request) -> str | None:
        return request.headers.get("x-brand")


class Served:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.client = api.client
        self.tenants: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, dict[str, str]] = {}

    async def owner(self, slug: str) -> dict[str, str]:
        """Register ``<slug>@example.com`` owning a tenant named ``slug``; returns bearer headers."""
        email = f"{slug}@example.com"
        registered = await self.api.register(email, tenant_name=slug.capitalize())
        assert registered["tenant"]["slug"] == slug
        self.tenants[slug] = registered["tenant"]
        self.tokens[slug] = self.api.bearer(await self.api.login(email))
        return self.tokens[slug]

    async def suspend(self, slug: str, status: str = "suspended") -> None:
        if "root@example.com" not in self.api.passwords:
            await create_superadmin(self.api.kit, "root@example.com", "root-password-1")
            self.api.passwords["root@example.com"] = "root-password-1"
        root = self.api.bearer(await self.api.login("root@example.com"))
        response = await self.client.patch(
            f"/admin/tenants/{self.tenants[slug]['id']}", json={"status": status}, headers=root
        )
        assert response.status_code == 200, response.text


ServeFactory = Callable[..., contextlib.AbstractAsyncContextManager[Served]]


@pytest.fixture
def served(kit_factory: Callable[..., TenantKit], settings_factory: Callable[..., Settings]) -> ServeFactory:
    @contextlib.asynccontextmanager
    async def start(
        base_url: str = "https://testserver", plugins: tuple[object, ...] = (), **settings: Any
    ) -> AsyncIterator[Served]:
        mailer = MemoryMailer()
        kit = kit_factory(settings_factory(**settings), mailer=mailer, plugins=plugins)
        async with serve(kit.build_app(routes=ROUTES), base_url=base_url) as client:
            yield Served(Api(client, kit, mailer))

    return start


async def test_header_by_id_and_slug_case_insensitively(served: ServeFactory) -> None:
    async with served() as s:
        await s.owner("acme")
        acme = s.tenants["acme"]
        for value in (acme["id"], acme["id"].upper(), "acme", "ACME", " Acme "):
            response = await s.client.get("/public/tenant", headers={"X-Tenant-ID": value})
            assert response.status_code == 200, value
            assert response.json()["slug"] == "acme"
        token = s.tokens["acme"]
        by_slug = await s.client.get("/protected/tenant", headers={**token, "X-Tenant-ID": "AcMe"})
        assert by_slug.json()["id"] == acme["id"]


async def test_token_claim_is_the_fallback(served: ServeFactory) -> None:
    async with served() as s:
        token = await s.owner("acme")
        response = await s.client.get("/protected/tenant", headers=token)
        assert response.status_code == 200
        assert response.json()["slug"] == "acme"
        # without a header and without a token there is no tenant at all
        assert_problem(await s.client.get("/public/tenant"), 400)


async def test_outcomes_unknown_suspended_and_not_bound(served: ServeFactory) -> None:
    async with served() as s:
        acme = await s.owner("acme")
        await s.owner("beta")
        unknown = {"X-Tenant-ID": "no-such-tenant"}
        assert_problem(await s.client.get("/public/tenant", headers=unknown), 404)
        assert_problem(await s.client.get("/public/tenant", headers={"X-Tenant-ID": "0" * 32}), 404)
        assert_problem(await s.client.get("/protected/tenant", headers={**acme, **unknown}), 404)
        # a header naming a tenant the token is not bound to
        body = assert_problem(
            await s.client.get("/protected/tenant", headers={**acme, "X-Tenant-ID": "beta"}), 403
        )
        assert "bound" in str(body["detail"])
        await s.suspend("beta")
        assert_problem(await s.client.get("/public/tenant", headers={"X-Tenant-ID": "beta"}), 403)
        assert_problem(await s.client.get("/protected/tenant", headers=s.tokens["beta"]), 403)
        # acme is untouched
        assert (await s.client.get("/protected/tenant", headers=acme)).status_code == 200


async def test_authentication_is_checked_before_the_tenant(served: ServeFactory) -> None:
    async with served() as s:
        await s.owner("acme")
        await s.suspend("acme")
        for path in ("/protected/tenant", "/protected/admin"):
            for tenant in ("no-such-tenant", "acme"):
                anonymous = await s.client.get(path, headers={"X-Tenant-ID": tenant})
                assert_problem(anonymous, 401)
                assert anonymous.headers["www-authenticate"].startswith("Bearer")
                bad_token = {"Authorization": "Bearer not-a-token", "X-Tenant-ID": tenant}
                assert_problem(await s.client.get(path, headers=bad_token), 401)


async def test_tenant_is_checked_before_the_permission(served: ServeFactory) -> None:
    async with served() as s:
        acme = await s.owner("acme")
        await s.owner("beta")
        # ADMIN of acme may read users; USER-level checks come after the tenant ones
        assert (await s.client.get("/protected/admin", headers=acme)).status_code == 200
        assert_problem(await s.client.get("/protected/admin", headers={**acme, "X-Tenant-ID": "nope"}), 404)
        assert_problem(await s.client.get("/protected/admin", headers={**acme, "X-Tenant-ID": "beta"}), 403)


async def test_subdomain_resolver(served: ServeFactory) -> None:
    async with served(tenant_resolvers=["subdomain", "token"], tenant_base_domain="example.test") as s:
        await s.owner("acme")
        response = await s.client.get("https://acme.example.test/public/tenant")
        assert response.status_code == 200
        assert response.json()["slug"] == "acme"
        assert (await s.client.get("https://ACME.Example.Test:8443/public/tenant")).json()["slug"] == "acme"
        assert_problem(await s.client.get("https://nobody.example.test/public/tenant"), 404)
        # the bare domain, nested labels and foreign hosts name no tenant
        for host in ("example.test", "a.acme.example.test", "acme.example.org"):
            assert_problem(await s.client.get(f"https://{host}/public/tenant"), 400)
        # the header resolver is not configured: the header is ignored
        ignored = await s.client.get("https://acme.example.test/public/tenant", headers={"X-Tenant-ID": "x"})
        assert ignored.status_code == 200


async def test_path_prefix_resolver(served: ServeFactory) -> None:
    async with served(tenant_resolvers=["path", "token"]) as s:
        token = await s.owner("acme")
        response = await s.client.get("/t/acme/public/tenant")
        assert response.status_code == 200
        assert response.json()["slug"] == "acme"
        assert response.json()["path"] == "/t/acme/public/tenant"  # the full URL is kept
        assert (await s.client.get("/t/ACME/protected/tenant", headers=token)).status_code == 200
        assert_problem(await s.client.get("/t/nobody/public/tenant"), 404)
        # no prefix: the token claim decides
        assert (await s.client.get("/protected/tenant", headers=token)).json()["slug"] == "acme"


async def test_path_prefix_is_configurable(served: ServeFactory) -> None:
    async with served(tenant_resolvers=["path"], tenant_path_prefix="/brands/") as s:
        await s.owner("acme")
        assert (await s.client.get("/brands/acme/public/tenant")).json()["slug"] == "acme"
        assert (await s.client.get("/t/acme/public/tenant")).status_code == 404  # no such route


@pytest.mark.parametrize(
    ("order", "winner"),
    [(["header", "subdomain"], "acme"), (["subdomain", "header"], "beta")],
)
async def test_resolver_order_is_configurable(served: ServeFactory, order: list[str], winner: str) -> None:
    async with served(tenant_resolvers=order, tenant_base_domain="example.test") as s:
        await s.owner("acme")
        await s.owner("beta")
        response = await s.client.get(
            "https://beta.example.test/public/tenant", headers={"X-Tenant-ID": "acme"}
        )
        assert response.json()["slug"] == winner


async def test_resolver_order_from_the_environment(
    settings_factory: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENANTKIT_TENANT_RESOLVERS", "plugin,path,token")
    assert settings_factory().tenant_resolvers == ["plugin", "path", "token"]


async def test_plugin_resolver(served: ServeFactory) -> None:
    async with served(tenant_resolvers=["plugin", "header", "token"], plugins=(BrandPlugin(),)) as s:
        token = await s.owner("acme")
        await s.owner("beta")
        assert (await s.client.get("/public/tenant", headers={"X-Brand": "beta"})).json()["slug"] == "beta"
        # the plugin comes first; the header is the fallback when it has no answer
        both = await s.client.get("/public/tenant", headers={"X-Brand": "beta", "X-Tenant-ID": "acme"})
        assert both.json()["slug"] == "beta"
        assert (await s.client.get("/public/tenant", headers={"X-Tenant-ID": "acme"})).json()[
            "slug"
        ] == "acme"
        assert_problem(await s.client.get("/public/tenant", headers={"X-Brand": "ghost"}), 404)
        # the plugin's answer is held to the same rules as any other source
        assert_problem(await s.client.get("/protected/tenant", headers={**token, "X-Brand": "beta"}), 403)
