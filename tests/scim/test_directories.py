"""What real directories send (Okta, Entra ID), adoption of current members, the last ADMIN, limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tenantkit import Settings, TenantKit
from tests.helpers import Api, serve
from tests.scim.conftest import Tenant, assert_scim_error, make_tenant, patch_body, user_body

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


async def test_entra_and_okta_payloads(api: Api, tenant: Tenant) -> None:
    # Entra ID: enterprise extension, a custom extension, string booleans, capitalised ops.
    created = await api.client.post(
        "/scim/v2/Users",
        json={
            "schemas": [
                USER := "urn:ietf:params:scim:schemas:core:2.0:User",
                ENTERPRISE,
                "urn:contoso:custom",
            ],
            "externalId": "entra-1",
            "userName": "Henry@Contoso.com",
            "active": "True",
            "displayName": "Henry",
            "name": {"givenName": "Henry", "familyName": "H"},
            "emails": [{"primary": True, "type": "work", "value": "Henry@Contoso.com"}],
            ENTERPRISE: {"department": "R&D", "employeeNumber": "42"},
            "urn:contoso:custom": {"badge": "7"},
        },
        headers=tenant.scim,
    )
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["userName"] == "henry@contoso.com" and user["active"] is True
    assert USER in user["schemas"] and ENTERPRISE not in user  # not kept
    url = f"/scim/v2/Users/{user['id']}"
    entra_patch = await api.client.patch(
        url,
        json=patch_body(
            {"op": "Replace", "path": "displayName", "value": "Henry H."},
            {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Sales"},
            {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "henry@contoso.com"},
            {"op": "Replace", "path": "active", "value": "False"},
        ),
        headers=tenant.scim,
    )
    assert entra_patch.status_code == 200, entra_patch.text
    assert entra_patch.json()["displayName"] == "Henry H." and entra_patch.json()["active"] is False

    # Okta: looks the user up, then PUTs the whole user back (read-only attributes included).
    looked_up = await api.client.get(
        "/scim/v2/Users?filter=userName%20eq%20%22henry%40contoso.com%22&startIndex=1&count=100",
        headers=tenant.scim,
    )
    okta_user = looked_up.json()["Resources"][0]
    okta_user.update(active=True, displayName="Henry Okta", name={"givenName": "Henry"})
    put = await api.client.put(url, json=okta_user, headers=tenant.scim)
    assert put.status_code == 200, put.text
    assert put.json()["active"] is True and put.json()["displayName"] == "Henry Okta"
    assert put.json()["externalId"] == "entra-1"

    # Entra removes group members with a value list (no filter in the path).
    await api.client.patch(
        "/scim/v2/Groups/ADMIN",
        json=patch_body({"op": "Add", "path": "members", "value": [{"value": user["id"]}]}),
        headers=tenant.scim,
    )
    removed = await api.client.patch(
        "/scim/v2/Groups/ADMIN",
        json=patch_body({"op": "Remove", "path": "members", "value": [{"value": user["id"]}]}),
        headers=tenant.scim,
    )
    assert removed.status_code == 200, removed.text
    assert user["id"] not in [m["value"] for m in removed.json().get("members", [])]
    assert (await api.client.get(url, headers=tenant.scim)).json()["groups"][0]["value"] == "USER"


async def test_current_members_are_adopted_and_the_last_admin_stays(api: Api, tenant: Tenant) -> None:
    owner = await api.client.post("/scim/v2/Users", json=user_body("owner@example.com"), headers=tenant.scim)
    assert owner.status_code == 201, owner.text
    assert owner.json()["groups"][0]["value"] == "ADMIN"  # adopted with the role they hold
    url = f"/scim/v2/Users/{owner.json()['id']}"
    for request in (
        api.client.patch(
            url,
            json=patch_body(
                {"op": "replace", "path": "displayName", "value": "Changed"},
                {"op": "replace", "path": "active", "value": False},
            ),
            headers=tenant.scim,
        ),
        api.client.delete(url, headers=tenant.scim),
        api.client.put(
            "/scim/v2/Groups/ADMIN", json={"displayName": "ADMIN", "members": []}, headers=tenant.scim
        ),
    ):
        assert_scim_error(await request, 409)
    me = await api.client.get("/auth/me", headers=tenant.admin)
    assert me.status_code == 200 and me.json()["role"] == "ADMIN"
    still = (await api.client.get(url, headers=tenant.scim)).json()
    assert still["active"] is True and still["groups"][0]["value"] == "ADMIN"
    assert "displayName" not in still  # the refused PATCH changed nothing


async def test_suspended_tenants_and_rate_limits(
    kit_factory: Callable[..., TenantKit], settings_factory: Callable[[], Settings]
) -> None:
    from tenantkit.mail import MemoryMailer

    kit = kit_factory(settings_factory(rate_limit_api="5/minute"), mailer=MemoryMailer())  # type: ignore[call-arg]
    async with serve(kit.build_app(), base_url="https://testserver") as client:
        api = Api(client, kit, MemoryMailer())
        tenant = await make_tenant(api, "limits@example.com")
        statuses = [(await client.get("/scim/v2/Users", headers=tenant.scim)).status_code for _ in range(8)]
        assert statuses[0] == 200 and statuses[-1] == 429
        limited = await client.get("/scim/v2/Users", headers=tenant.scim)
        body: dict[str, Any] = assert_scim_error(limited, 429)
        assert "Retry-After" in limited.headers and body["status"] == "429"

        other = await make_tenant(api, "suspended@example.com")
        await kit.tenancy.set_tenant_status(__import__("uuid").UUID(other.id), "suspended", actor_id=None)
        assert_scim_error(await client.get("/scim/v2/Users", headers=other.scim), 403)
