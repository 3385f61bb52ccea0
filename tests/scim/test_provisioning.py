"""Provisioning and deprovisioning through ``/scim/v2/Users``, on SQLite + memory and PostgreSQL + Redis."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from tenantkit.db.models import Membership, ScimUser
from tenantkit.db.scoping import unscoped
from tests.helpers import Api, assert_problem
from tests.scim.conftest import Tenant, assert_scim_error, make_tenant, patch_body, user_body


async def _provision(api: Api, tenant: Tenant, email: str, **extra: Any) -> dict[str, Any]:
    created = await api.client.post("/scim/v2/Users", json=user_body(email, **extra), headers=tenant.scim)
    assert created.status_code == 201, created.text
    assert created.headers["location"].endswith(f"/scim/v2/Users/{created.json()['id']}")
    return dict(created.json())


async def _members(api: Api, tenant: Tenant) -> dict[str, str]:
    listed = await api.client.get("/users", headers=tenant.admin)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    items = body["items"] if isinstance(body, dict) else body
    return {m["email"]: m["role"] for m in items}


async def test_an_existing_account_is_provisioned_deactivated_and_restored(api: Api, tenant: Tenant) -> None:
    await api.register("Bob@Example.com")  # a password account with a tenant of its own
    api.passwords["bob@example.com"] = api.passwords["Bob@Example.com"]
    user = await _provision(
        api,
        tenant,
        "BOB@example.com",
        displayName="Bob B.",
        externalId="okta-123",
        name={"givenName": "Bob"},
        emails=[{"value": "bob@example.com", "primary": True}],
        **{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales"}},
    )
    assert user["userName"] == "bob@example.com" and user["active"] is True
    assert user["displayName"] == "Bob B." and user["externalId"] == "okta-123"
    assert user["emails"] == [{"value": "bob@example.com", "type": "work", "primary": True}]
    assert user["groups"][0]["value"] == "USER"
    assert (await _members(api, tenant))["bob@example.com"] == "USER"

    # Bob signs in with his own password and enters the tenant.
    bob = api.bearer(await api.login("bob@example.com", **{"X-Tenant-ID": tenant.id}))
    me = await api.client.get("/auth/me", headers=bob)
    assert me.status_code == 200 and me.json()["tenant"]["id"] == tenant.id and me.json()["role"] == "USER"

    # Made ADMIN through the ADMIN group, then deactivated: his live token is refused at once.
    added = await api.client.patch(
        "/scim/v2/Groups/ADMIN",
        json=patch_body({"op": "add", "path": "members", "value": [{"value": user["id"]}]}),
        headers=tenant.scim,
    )
    assert added.status_code == 200, added.text
    bob = api.bearer(await api.login("bob@example.com", **{"X-Tenant-ID": tenant.id}))
    assert (await api.client.get("/users", headers=bob)).status_code == 200  # ADMIN now
    off = await api.client.patch(
        f"/scim/v2/Users/{user['id']}",
        json=patch_body({"op": "replace", "path": "active", "value": False}),
        headers=tenant.scim,
    )
    assert off.status_code == 200 and off.json()["active"] is False, off.text
    assert off.json()["groups"][0]["value"] == "ADMIN"  # kept for reactivation
    assert (await api.client.get("/auth/me", headers=bob)).status_code in (401, 403)
    assert (await api.client.get("/users", headers=bob)).status_code in (401, 403)
    assert "bob@example.com" not in await _members(api, tenant)
    assert_problem(
        await api.client.post(
            "/auth/login",
            json={"email": "bob@example.com", "password": api.passwords["bob@example.com"]},
            headers={"X-Tenant-ID": tenant.id},
        ),
        403,
    )
    kept = await api.client.get(f"/scim/v2/Users/{user['id']}", headers=tenant.scim)
    assert kept.status_code == 200 and kept.json()["active"] is False

    # Reactivated (Okta's no-path form): the membership comes back with the role it had.
    on = await api.client.patch(
        f"/scim/v2/Users/{user['id']}",
        json=patch_body({"op": "Replace", "value": {"active": True}}),
        headers=tenant.scim,
    )
    assert on.status_code == 200 and on.json()["active"] is True, on.text
    assert (await _members(api, tenant))["bob@example.com"] == "ADMIN"
    bob = api.bearer(await api.login("bob@example.com", **{"X-Tenant-ID": tenant.id}))
    assert (await api.client.get("/auth/me", headers=bob)).json()["role"] == "ADMIN"

    # His own tenant never noticed.
    own = api.bearer(await api.login("bob@example.com"))
    assert (await api.client.get("/auth/me", headers=own)).status_code == 200


async def test_delete_ends_the_membership_and_its_sessions(api: Api, tenant: Tenant) -> None:
    await api.register("carol@example.com")
    user = await _provision(api, tenant, "carol@example.com")
    carol = api.bearer(await api.login("carol@example.com", **{"X-Tenant-ID": tenant.id}))
    assert (await api.client.get("/auth/me", headers=carol)).status_code == 200
    deleted = await api.client.delete(f"/scim/v2/Users/{user['id']}", headers=tenant.scim)
    assert deleted.status_code == 204
    assert (await api.client.get("/auth/me", headers=carol)).status_code in (401, 403)
    assert_scim_error(await api.client.get(f"/scim/v2/Users/{user['id']}", headers=tenant.scim), 404)
    assert_scim_error(await api.client.delete(f"/scim/v2/Users/{user['id']}", headers=tenant.scim), 404)
    assert "carol@example.com" not in await _members(api, tenant)
    with unscoped("test: nothing left of carol in the tenant"):
        async with api.kit.database.session() as session:
            uid = uuid.UUID(user["id"])
            assert await session.scalar(select(ScimUser).where(ScimUser.user_id == uid)) is None
            membership = await session.scalar(
                select(Membership).where(
                    Membership.user_id == uid, Membership.tenant_id == uuid.UUID(tenant.id)
                )
            )
            assert membership is None
    # Provisioned again later: a fresh start as USER.
    again = await _provision(api, tenant, "carol@example.com")
    assert again["id"] == user["id"] and again["active"] is True

    # The audit log tells what the directory did, and with which token.
    await api.kit.audit_log.flush()
    rows = (await api.client.get("/audit", params={"action": "scim.*"}, headers=tenant.admin)).json()["items"]
    done = [(r["action"], r["target"], r["data"].get("scim_token_id")) for r in rows]
    assert ("scim.user_deprovisioned", user["id"], tenant.token_id) in done
    assert done.count(("scim.user_provisioned", user["id"], tenant.token_id)) == 2
    removed = (
        await api.client.get("/audit", params={"action": "membership.removed"}, headers=tenant.admin)
    ).json()
    assert user["id"] in [r["target"] for r in removed["items"]]


async def test_new_accounts_have_no_usable_password_and_inactive_users_no_membership(
    api: Api, tenant: Tenant
) -> None:
    dave = await _provision(api, tenant, "dave@example.com", active=False)
    assert dave["active"] is False
    assert "dave@example.com" not in await _members(api, tenant)
    for password in ("", "correct horse battery", "!"):
        refused = await api.client.post(
            "/auth/login", json={"email": "dave@example.com", "password": password}
        )
        assert refused.status_code in (401, 422)
    on = await api.client.patch(
        f"/scim/v2/Users/{dave['id']}",
        json=patch_body({"op": "replace", "path": "active", "value": True}),
        headers=tenant.scim,
    )
    assert on.status_code == 200 and (await _members(api, tenant))["dave@example.com"] == "USER"


async def test_uniqueness_and_input_errors(api: Api, tenant: Tenant) -> None:
    await _provision(api, tenant, "erin@example.com")
    assert_scim_error(
        await api.client.post("/scim/v2/Users", json=user_body("ERIN@example.com"), headers=tenant.scim),
        409,
        "uniqueness",
    )
    assert_scim_error(
        await api.client.post("/scim/v2/Users", json=user_body("not-an-email"), headers=tenant.scim),
        400,
        "invalidValue",
    )
    assert_scim_error(
        await api.client.post(
            "/scim/v2/Users", json={"schemas": [], "displayName": "x"}, headers=tenant.scim
        ),
        400,
    )
    assert_scim_error(
        await api.client.post("/scim/v2/Users", content=b"{not json", headers=tenant.scim),
        400,
        "invalidSyntax",
    )
    assert_scim_error(
        await api.client.post("/scim/v2/Users", content=b"[1]", headers=tenant.scim), 400, "invalidSyntax"
    )
    wrong_type = {**tenant.scim, "Content-Type": "text/plain"}
    assert_scim_error(await api.client.post("/scim/v2/Users", content=b"{}", headers=wrong_type), 415)
    plain_json = {**tenant.scim, "Content-Type": "application/json"}
    accepted = await api.client.post("/scim/v2/Users", json=user_body("json@example.com"), headers=plain_json)
    assert accepted.status_code == 201
    deep: Any = {}
    for _ in range(100):
        deep = {"a": deep}
    assert_scim_error(
        await api.client.post(
            "/scim/v2/Users", json=user_body("deep@example.com", x=deep), headers=tenant.scim
        ),
        400,
    )
    nul = await api.client.post(
        "/scim/v2/Users", json=user_body("nul@example.com", displayName="a\x00b"), headers=tenant.scim
    )
    assert_scim_error(nul, 400, "invalidValue")
    huge = await api.client.post(
        "/scim/v2/Users",
        json=user_body("big@example.com", displayName="x" * (api.kit.settings.max_body_bytes + 10)),
        headers=tenant.scim,
    )
    assert huge.status_code == 413
    assert_scim_error(await api.client.get("/scim/v2/Users/not-a-uuid", headers=tenant.scim), 404)
    assert_scim_error(await api.client.get(f"/scim/v2/Users/{uuid.uuid4()}", headers=tenant.scim), 404)


async def test_a_token_never_sees_another_tenant(api: Api, tenant: Tenant) -> None:
    other = await make_tenant(api, "other-owner@example.com")
    theirs = await _provision(api, other, "frank@example.com")
    mine = await _provision(api, tenant, "grace@example.com")
    url = f"/scim/v2/Users/{theirs['id']}"
    assert_scim_error(await api.client.get(url, headers=tenant.scim), 404)
    assert_scim_error(
        await api.client.patch(
            url, json=patch_body({"op": "replace", "path": "active", "value": False}), headers=tenant.scim
        ),
        404,
    )
    assert_scim_error(
        await api.client.put(url, json=user_body("frank@example.com"), headers=tenant.scim), 404
    )
    assert_scim_error(await api.client.delete(url, headers=tenant.scim), 404)
    listed = (await api.client.get("/scim/v2/Users", headers=tenant.scim)).json()
    assert [u["id"] for u in listed["Resources"]] == [mine["id"]]
    found = await api.client.get('/scim/v2/Users?filter=userName eq "frank@example.com"', headers=tenant.scim)
    assert found.json()["totalResults"] == 0
    # Group membership of the other tenant's user cannot be touched either.
    assert_scim_error(
        await api.client.patch(
            "/scim/v2/Groups/ADMIN",
            json=patch_body({"op": "add", "path": "members", "value": [{"value": theirs["id"]}]}),
            headers=tenant.scim,
        ),
        400,
        "invalidValue",
    )
    still = await api.client.get(url, headers=other.scim)
    assert still.json()["active"] is True and still.json()["groups"][0]["value"] == "USER"
