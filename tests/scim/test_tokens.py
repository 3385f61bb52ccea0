"""``/tenant/scim-tokens`` and SCIM authentication, on SQLite + memory and PostgreSQL + Redis."""

from __future__ import annotations

from typing import Any

from tests.helpers import Api, assert_problem, eventually
from tests.scim.conftest import SCIM, Tenant, assert_scim_error, make_tenant, user_body


async def test_token_lifecycle(api: Api) -> None:
    admin = api.bearer(await api.login((await api.register("owner@example.com"))["user"]["email"]))
    created = await api.client.post("/tenant/scim-tokens", json={"name": "okta"}, headers=admin)
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    body = created.json()
    assert {"id", "token", "name", "created_at"} <= set(body) and body["name"] == "okta"
    assert body["token"].startswith(body["prefix"] + "_") and body["prefix"].startswith("scim_")
    unnamed = await api.client.post("/tenant/scim-tokens", headers=admin)
    assert unnamed.status_code == 201 and unnamed.json()["name"] == ""

    listed = await api.client.get("/tenant/scim-tokens", headers=admin)
    assert listed.status_code == 200 and listed.headers["cache-control"] == "no-store"
    items = listed.json()["items"]
    assert {i["id"] for i in items} == {body["id"], unnamed.json()["id"]}
    assert all("token" not in i for i in items) and body["token"] not in listed.text

    scim = {"Authorization": f"Bearer {body['token']}"}
    assert (await api.client.get("/scim/v2/Users", headers=scim)).status_code == 200
    assert (await api.client.delete(f"/tenant/scim-tokens/{body['id']}", headers=admin)).status_code == 204
    assert_scim_error(await api.client.get("/scim/v2/Users", headers=scim), 401)
    assert_problem(await api.client.delete(f"/tenant/scim-tokens/{body['id']}", headers=admin), 404)
    assert [
        i["id"] for i in (await api.client.get("/tenant/scim-tokens", headers=admin)).json()["items"]
    ] == [unnamed.json()["id"]]


async def test_a_revoked_token_stops_in_every_process(two_instances: tuple[Api, Any]) -> None:
    first, second = two_instances
    tenant = await make_tenant(first, "owner@example.com")
    scim = {"Authorization": f"Bearer {tenant.token}"}
    assert (await second.get("/scim/v2/Users", headers=scim)).status_code == 200  # warm on B
    revoked = await first.client.delete(f"/tenant/scim-tokens/{tenant.token_id}", headers=tenant.admin)
    assert revoked.status_code == 204
    assert_scim_error(await eventually(lambda: second.get("/scim/v2/Users", headers=scim), 401), 401)


async def test_only_tenant_managers_hold_tokens_and_only_tokens_open_scim(api: Api, tenant: Tenant) -> None:
    # A USER of the tenant (an account with its own tenant, provisioned here as USER)
    # cannot manage the tenant's SCIM tokens.
    await api.register("plain@example.com")
    await api.client.post("/scim/v2/Users", json=user_body("plain@example.com"), headers=tenant.scim)
    plain = api.bearer(await api.login("plain@example.com", **{"X-Tenant-ID": tenant.id}))
    assert_problem(await api.client.post("/tenant/scim-tokens", headers=plain), 403)
    assert_problem(await api.client.get("/tenant/scim-tokens", headers=plain), 403)
    assert_problem(await api.client.post("/tenant/scim-tokens"), 401)

    for headers in (
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer scim_0123456789abcdef_" + "x" * 43},
        {"Authorization": f"Bearer {tenant.token}x"},
        tenant.admin,  # a user's access token is not a SCIM token
    ):
        refused = await api.client.get("/scim/v2/Users", headers=headers)
        assert_scim_error(refused, 401)
        assert refused.headers["www-authenticate"].startswith("Bearer")
    key = await api.client.post(
        "/api-keys", json={"name": "k", "scopes": ["users.read"]}, headers=tenant.admin
    )
    assert_scim_error(
        await api.client.get("/scim/v2/Users", headers={"Authorization": f"Bearer {key.json()['key']}"}), 401
    )
    # A SCIM token opens nothing outside /scim/v2.
    assert_problem(await api.client.get("/users", headers={"Authorization": f"Bearer {tenant.token}"}), 401)


async def test_scim_answers_are_scim_json(api: Api, tenant: Tenant) -> None:
    response = await api.client.get("/scim/v2/ServiceProviderConfig", headers=tenant.scim)
    assert response.status_code == 200 and response.headers["content-type"].startswith(SCIM)
    config = response.json()
    assert config["patch"]["supported"] is True and config["bulk"]["supported"] is False
    types = (await api.client.get("/scim/v2/ResourceTypes", headers=tenant.scim)).json()
    assert {r["name"] for r in types["Resources"]} == {"User", "Group"}
    user_type = await api.client.get("/scim/v2/ResourceTypes/User", headers=tenant.scim)
    assert user_type.json()["endpoint"] == "/Users"
    schemas = (await api.client.get("/scim/v2/Schemas", headers=tenant.scim)).json()
    user_schema = next(s for s in schemas["Resources"] if s["name"] == "User")
    attributes = {a["name"]: a for a in user_schema["attributes"]}
    assert (
        attributes["userName"]["mutability"] == "immutable"
        and attributes["emails"]["mutability"] == "readOnly"
    )
    assert "password" not in attributes
    assert_scim_error(await api.client.get("/scim/v2/Schemas/urn:nope", headers=tenant.scim), 404)
    assert_scim_error(await api.client.get("/scim/v2/Nowhere", headers=tenant.scim), 404)
    assert_scim_error(await api.client.delete("/scim/v2/Schemas", headers=tenant.scim), 405)
    assert_scim_error(await api.client.post("/scim/v2/.search", json={}, headers=tenant.scim), 501)
