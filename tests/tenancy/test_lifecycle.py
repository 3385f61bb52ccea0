"""Tenant lifecycle over HTTP: suspension across instances, switching tenants, invitations."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import httpx
from sqlalchemy import update

from tenantkit import Settings, TenantKit
from tenantkit.admin import create_superadmin
from tenantkit.db.base import utcnow
from tenantkit.db.models import Invitation
from tenantkit.mail import MemoryMailer
from tenantkit.tenancy import unscoped
from tests.helpers import Api, assert_problem, eventually, serve


async def superadmin(api: Api) -> dict[str, str]:
    await create_superadmin(api.kit, "root@example.com", "root-password-1")
    api.passwords["root@example.com"] = "root-password-1"
    return api.bearer(await api.login("root@example.com"))


async def invite(api: Api, admin: dict[str, str], email: str, role: str = "USER") -> str:
    response = await api.client.post("/users/invitations", json={"email": email, "role": role}, headers=admin)
    assert response.status_code == 201, response.text
    return str(response.json()["invite_token"])


async def test_suspension_on_one_instance_is_seen_by_another(
    two_instances: tuple[Api, httpx.AsyncClient],
) -> None:
    # postgres: two kits sharing PostgreSQL and Redis; sqlite: sharing the file and one MemoryStore
    api, b = two_instances
    a = api.client
    tenant = (await api.register("owner@example.com", tenant_name="Suspendable"))["tenant"]
    await api.register("bystander@example.com", tenant_name="Bystander")
    owner = api.bearer(await api.login("owner@example.com"))
    bystander = api.bearer(await api.login("bystander@example.com"))
    root = await superadmin(api)
    # B has the tenant cached as active
    assert (await b.get("/auth/me", headers=owner)).status_code == 200
    assert (await b.get("/auth/me", headers={**owner, "X-Tenant-ID": tenant["slug"]})).status_code == 200

    patched = await a.patch(f"/admin/tenants/{tenant['id']}", json={"status": "suspended"}, headers=root)
    assert patched.status_code == 200
    assert patched.json()["status"] == "suspended"
    # the same token, no new login: B refuses once the invalidation arrives
    assert_problem(await eventually(lambda: b.get("/auth/me", headers=owner), 403), 403)
    assert_problem(await b.get("/auth/me", headers={**owner, "X-Tenant-ID": tenant["slug"]}), 403)
    assert_problem(await a.get("/auth/me", headers=owner), 403)
    credentials = {"email": "owner@example.com", "password": api.passwords["owner@example.com"]}
    assert_problem(await b.post("/auth/login", json=credentials), 403)
    # other tenants are untouched
    assert (await b.get("/auth/me", headers=bystander)).status_code == 200

    listing = (await b.get("/admin/tenants", headers=root)).json()["items"]
    assert {t["slug"]: t["status"] for t in listing}[tenant["slug"]] == "suspended"

    reactivated = await a.patch(f"/admin/tenants/{tenant['id']}", json={"status": "active"}, headers=root)
    assert reactivated.json()["status"] == "active"
    assert (await eventually(lambda: b.get("/auth/me", headers=owner), 200)).status_code == 200
    assert (await b.post("/auth/login", json=credentials)).status_code == 200


async def test_an_admin_of_a_tenant_cannot_suspend_tenants(api: Api) -> None:
    tenant = (await api.register("owner@example.com"))["tenant"]
    owner = api.bearer(await api.login("owner@example.com"))
    assert_problem(
        await api.client.patch(f"/admin/tenants/{tenant['id']}", json={"status": "suspended"}, headers=owner),
        403,
    )
    root = await superadmin(api)
    assert_problem(
        await api.client.patch(f"/admin/tenants/{uuid.uuid4()}", json={"status": "suspended"}, headers=root),
        404,
    )
    assert (await api.client.get("/auth/me", headers=owner)).status_code == 200


async def test_switch_tenant_binds_new_tokens_to_the_other_membership(api: Api) -> None:
    one = (await api.register("multi@example.com", tenant_name="One"))["tenant"]
    two = (await api.register("owner2@example.com", tenant_name="Two"))["tenant"]
    three = (await api.register("owner3@example.com", tenant_name="Three"))["tenant"]
    owner2 = api.bearer(await api.login("owner2@example.com"))
    multi = api.bearer(await api.login("multi@example.com"))
    token = await invite(api, owner2, "multi@example.com", role="ADMIN")
    assert (
        await api.client.post("/auth/invitations/accept", json={"invite_token": token}, headers=multi)
    ).status_code == 200

    switched = await api.client.post("/auth/switch-tenant", json={"tenant": "TWO"}, headers=multi)
    assert switched.status_code == 200
    assert {"access_token", "refresh_token"} <= set(switched.json())
    in_two = api.bearer(switched.json())
    me = (await api.client.get("/auth/me", headers=in_two)).json()
    assert (me["tenant"]["id"], me["role"]) == (two["id"], "ADMIN")
    # each token stays bound to its own tenant
    assert_problem(await api.client.get("/auth/me", headers={**in_two, "X-Tenant-ID": one["slug"]}), 403)
    assert_problem(await api.client.get("/auth/me", headers={**multi, "X-Tenant-ID": two["id"]}), 403)
    assert (await api.client.get("/auth/me", headers=multi)).json()["tenant"]["id"] == one["id"]
    # the new refresh token continues the session in tenant Two
    refreshed = await api.client.post(
        "/auth/refresh", json={"refresh_token": switched.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200
    again = (await api.client.get("/auth/me", headers=api.bearer(refreshed.json()))).json()
    assert again["tenant"]["id"] == two["id"]
    # by id back to One
    back = await api.client.post("/auth/switch-tenant", json={"tenant": one["id"]}, headers=in_two)
    assert (await api.client.get("/auth/me", headers=api.bearer(back.json()))).json()["role"] == "ADMIN"

    assert_problem(
        await api.client.post("/auth/switch-tenant", json={"tenant": three["slug"]}, headers=multi), 403
    )
    assert_problem(
        await api.client.post("/auth/switch-tenant", json={"tenant": "nowhere"}, headers=multi), 404
    )
    assert_problem(await api.client.post("/auth/switch-tenant", json={"tenant": "two"}), 401)

    root = await superadmin(api)
    await api.client.patch(f"/admin/tenants/{two['id']}", json={"status": "suspended"}, headers=root)
    assert_problem(await api.client.post("/auth/switch-tenant", json={"tenant": "two"}, headers=multi), 403)


async def test_invited_role_applies_on_register(api: Api) -> None:
    owner = (await api.register("boss@example.com"))["tenant"]
    boss = api.bearer(await api.login("boss@example.com"))
    token = await invite(api, boss, "deputy@example.com", role="ADMIN")
    registered = await api.register("Deputy@Example.com", invite_token=token)
    assert registered["tenant"]["id"] == owner["id"]
    deputy = api.bearer(await api.login("deputy@example.com", api.passwords["Deputy@Example.com"]))
    assert (await api.client.get("/auth/me", headers=deputy)).json()["role"] == "ADMIN"
    assert (await api.client.get("/users", headers=deputy)).status_code == 200


async def test_invitation_is_single_use_across_register_and_accept(api: Api) -> None:
    await api.register("boss@example.com")
    boss = api.bearer(await api.login("boss@example.com"))
    token = await invite(api, boss, "invited@example.com")
    # somebody else cannot register with it, and the attempt does not spend it
    wrong = await api.client.post(
        "/auth/register",
        json={"email": "other@example.com", "password": "password123", "invite_token": token},
    )
    assert_problem(wrong, 403)
    await api.register("invited@example.com", invite_token=token)
    invited = api.bearer(await api.login("invited@example.com"))
    assert_problem(
        await api.client.post("/auth/invitations/accept", json={"invite_token": token}, headers=invited), 404
    )
    reused = await api.client.post(
        "/auth/register",
        json={"email": "third@example.com", "password": "password123", "invite_token": token},
    )
    assert_problem(reused, 404)


async def test_expired_invitation_is_refused(api: Api) -> None:
    await api.register("boss@example.com")
    await api.register("existing@example.com")
    boss = api.bearer(await api.login("boss@example.com"))
    for_new = await invite(api, boss, "late@example.com")
    for_existing = await invite(api, boss, "existing@example.com")
    with unscoped("test: expire every invitation"):
        async with api.kit.database.session() as session, session.begin():
            await session.execute(update(Invitation).values(expires_at=utcnow() - timedelta(seconds=1)))
    late = await api.client.post(
        "/auth/register",
        json={"email": "late@example.com", "password": "password123", "invite_token": for_new},
    )
    assert_problem(late, 404)
    existing = api.bearer(await api.login("existing@example.com"))
    assert_problem(
        await api.client.post(
            "/auth/invitations/accept", json={"invite_token": for_existing}, headers=existing
        ),
        404,
    )
    members = (await api.client.get("/users", headers=boss)).json()["items"]
    assert [m["email"] for m in members] == ["boss@example.com"]


async def test_invitation_expiry_follows_the_setting(
    kit_factory: Callable[..., TenantKit], settings_factory: Callable[..., Settings]
) -> None:
    kit = kit_factory(settings_factory(invitation_ttl=3600), mailer=MemoryMailer())
    async with serve(kit.build_app(), base_url="https://testserver") as client:
        api = Api(client, kit, MemoryMailer())
        await api.register("boss@example.com")
        boss = api.bearer(await api.login("boss@example.com"))
        before = utcnow()
        response = await client.post(
            "/users/invitations", json={"email": "x@example.com", "role": "USER"}, headers=boss
        )
        expires = response.json()["expires_at"]
    from datetime import datetime

    delta = datetime.fromisoformat(expires) - before
    assert timedelta(seconds=3590) < delta < timedelta(seconds=3610)


async def test_invitation_names_its_own_tenant(api: Api) -> None:
    await api.register("boss@example.com", tenant_name="Inviter")
    other = (await api.register("else@example.com", tenant_name="Elsewhere"))["tenant"]
    boss = api.bearer(await api.login("boss@example.com"))
    token = await invite(api, boss, "newbie@example.com")
    # the header names another tenant than the one that issued the invitation
    mismatched = await api.client.post(
        "/auth/register",
        json={"email": "newbie@example.com", "password": "password123", "invite_token": token},
        headers={"X-Tenant-ID": other["slug"]},
    )
    assert_problem(mismatched, 404)
    # still unspent
    assert (await api.register("newbie@example.com", invite_token=token))["role"] == "USER"


async def test_invitation_to_a_suspended_tenant_is_refused(api: Api) -> None:
    tenant = (await api.register("boss@example.com"))["tenant"]
    boss = api.bearer(await api.login("boss@example.com"))
    token = await invite(api, boss, "newbie@example.com")
    root = await superadmin(api)
    await api.client.patch(f"/admin/tenants/{tenant['id']}", json={"status": "suspended"}, headers=root)
    refused = await api.client.post(
        "/auth/register",
        json={"email": "newbie@example.com", "password": "password123", "invite_token": token},
    )
    assert_problem(refused, 403)
