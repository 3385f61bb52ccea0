"""Filters, pagination, PATCH operations and groups (= roles) over ``/scim/v2``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.helpers import Api
from tests.scim.conftest import Tenant, assert_scim_error, patch_body, user_body


async def _users(api: Api, tenant: Tenant, count: int) -> list[dict[str, Any]]:
    made = []
    for i in range(count):
        created = await api.client.post(
            "/scim/v2/Users",
            json=user_body(f"user{i}@example.com", displayName=f"User {i}", externalId=f"ext-{i}"),
            headers=tenant.scim,
        )
        assert created.status_code == 201, created.text
        made.append(dict(created.json()))
    return made


async def _list(api: Api, tenant: Tenant, path: str, query: str = "") -> Any:
    response = await api.client.get(f"{path}?{query}", headers=tenant.scim)
    assert response.status_code == 200, response.text
    return response.json()


async def test_filters_and_pagination(api: Api, tenant: Tenant) -> None:
    users = await _users(api, tenant, 5)

    def f(text: str) -> str:
        return "filter=" + quote(text)

    for expression in (
        'userName eq "USER2@example.com"',
        'externalId eq "ext-2"',
        'emails.value eq "user2@example.com"',
        'emails eq "user2@example.com"',
        f'id eq "{users[2]["id"]}"',
        'displayName eq "User 2"',
        'displayName co "r 2"',
        'userName sw "user2" and active eq true',
    ):
        found = await _list(api, tenant, "/scim/v2/Users", f(expression))
        assert [u["id"] for u in found["Resources"]] == [users[2]["id"]], expression
        assert found["totalResults"] == 1
    assert (await _list(api, tenant, "/scim/v2/Users", f('externalId eq "EXT-2"')))[
        "totalResults"
    ] == 0  # caseExact
    assert (await _list(api, tenant, "/scim/v2/Users", f('userName eq "nobody@example.com"')))[
        "Resources"
    ] == []
    assert (await _list(api, tenant, "/scim/v2/Users", f('id eq "not-a-uuid"')))["totalResults"] == 0
    for bad in ('name.givenName eq "x"', "userName eq", 'userName zz "x"', "((("):
        response = await api.client.get(f"/scim/v2/Users?{f(bad)}", headers=tenant.scim)
        assert_scim_error(response, 400, "invalidFilter")

    page = await _list(api, tenant, "/scim/v2/Users", "startIndex=2&count=2")
    assert page["totalResults"] == 5 and page["startIndex"] == 2 and page["itemsPerPage"] == 2
    assert [u["id"] for u in page["Resources"]] == [users[1]["id"], users[2]["id"]]
    last = await _list(api, tenant, "/scim/v2/Users", "startIndex=5&count=10")
    assert [u["id"] for u in last["Resources"]] == [users[4]["id"]]
    counted = await _list(api, tenant, "/scim/v2/Users", "count=0")
    assert counted["totalResults"] == 5 and counted.get("Resources", []) == []
    floor = await _list(api, tenant, "/scim/v2/Users", "startIndex=-3&count=1")
    assert floor["startIndex"] == 1 and [u["id"] for u in floor["Resources"]] == [users[0]["id"]]
    capped = await _list(api, tenant, "/scim/v2/Users", "count=100000")
    assert capped["itemsPerPage"] == 5
    filtered_page = await _list(
        api, tenant, "/scim/v2/Users", f('userName sw "user"') + "&startIndex=4&count=1"
    )
    assert filtered_page["totalResults"] == 5 and [u["id"] for u in filtered_page["Resources"]] == [
        users[3]["id"]
    ]

    chosen = await _list(api, tenant, "/scim/v2/Users", "attributes=displayName&count=1")
    assert set(chosen["Resources"][0]) <= {"schemas", "id", "displayName", "meta"}
    one = await api.client.get(
        f"/scim/v2/Users/{users[0]['id']}?excludedAttributes=externalId", headers=tenant.scim
    )
    assert "externalId" not in one.json() and one.json()["userName"] == "user0@example.com"

    searched = await api.client.post(
        "/scim/v2/Users/.search",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'externalId eq "ext-4"',
        },
        headers=tenant.scim,
    )
    assert searched.status_code == 200 and [u["id"] for u in searched.json()["Resources"]] == [users[4]["id"]]


async def test_patch_and_put(api: Api, tenant: Tenant) -> None:
    (user,) = await _users(api, tenant, 1)
    url = f"/scim/v2/Users/{user['id']}"

    async def patch(*operations: dict[str, Any]) -> Any:
        return await api.client.patch(url, json=patch_body(*operations), headers=tenant.scim)

    changed = await patch(
        {"op": "replace", "path": "displayName", "value": "Renamed"},
        {"op": "add", "path": "externalId", "value": "ext-new"},
        {"op": "add", "path": "name.givenName", "value": "Ignored"},  # accepted, not kept
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["displayName"] == "Renamed" and changed.json()["externalId"] == "ext-new"
    assert (await api.client.get(url, headers=tenant.scim)).json()["displayName"] == "Renamed"
    removed = await patch({"op": "remove", "path": "externalId"}, {"op": "remove", "path": "displayName"})
    assert (
        removed.status_code == 200
        and "externalId" not in removed.json()
        and "displayName" not in removed.json()
    )

    assert_scim_error(await patch({"op": "remove", "path": "active"}), 400, "invalidValue")
    assert_scim_error(
        await patch({"op": "replace", "path": "userName", "value": "x@example.com"}), 400, "mutability"
    )
    assert_scim_error(await patch({"op": "replace", "path": "groups", "value": []}), 400, "mutability")
    assert_scim_error(await patch({"op": "replace", "path": "nope", "value": 1}), 400, "invalidPath")
    assert_scim_error(await patch({"op": "jump", "path": "active", "value": True}), 400, "invalidValue")
    assert_scim_error(await api.client.patch(url, json={"Operations": []}, headers=tenant.scim), 400)
    # A failed PATCH changed nothing (atomic): the earlier state stands.
    assert (await api.client.get(url, headers=tenant.scim)).json()["active"] is True

    replaced = await api.client.put(
        url, json=user_body("user0@example.com", displayName="Put", active=False), headers=tenant.scim
    )
    assert replaced.status_code == 200 and replaced.json()["displayName"] == "Put"
    assert replaced.json()["active"] is False and "externalId" not in replaced.json()
    assert_scim_error(
        await api.client.put(url, json=user_body("someone-else@example.com"), headers=tenant.scim),
        400,
        "mutability",
    )
    assert_scim_error(await api.client.put(url, json={"displayName": "x"}, headers=tenant.scim), 400)


async def test_groups_are_roles(api: Api, tenant: Tenant) -> None:
    ann, ben = await _users(api, tenant, 2)
    groups = await _list(api, tenant, "/scim/v2/Groups")
    assert {g["displayName"] for g in groups["Resources"]} == {"USER", "ADMIN"}
    users_group = next(g for g in groups["Resources"] if g["id"] == "USER")
    assert {m["value"] for m in users_group["members"]} == {ann["id"], ben["id"]}
    found = await _list(api, tenant, "/scim/v2/Groups", "filter=" + quote('displayName eq "ADMIN"'))
    assert [g["id"] for g in found["Resources"]] == ["ADMIN"]
    # Entra ID's lookup: by name, without the member list.
    lookup = await _list(
        api, tenant, "/scim/v2/Groups", "excludedAttributes=members&filter=" + quote('displayName eq "USER"')
    )
    assert [g["id"] for g in lookup["Resources"]] == ["USER"] and "members" not in lookup["Resources"][0]

    created = await api.client.post(
        "/scim/v2/Groups",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Support",
            "members": [{"value": ann["id"]}],
        },
        headers=tenant.scim,
    )
    assert created.status_code == 201, created.text
    assert created.json()["id"] == "Support" and [m["value"] for m in created.json()["members"]] == [
        ann["id"]
    ]
    roles = await api.client.get("/roles", headers=tenant.admin)
    support = next(r for r in roles.json()["items"] if r["name"] == "Support")
    assert support["permissions"] == [] and support["builtin"] is False
    member_roles = {
        m["email"]: m["role"] for m in (await api.client.get("/users", headers=tenant.admin)).json()["items"]
    }
    assert member_roles["user0@example.com"] == "Support"
    user_view = (await api.client.get(f"/scim/v2/Users/{ann['id']}", headers=tenant.scim)).json()
    assert user_view["groups"][0]["value"] == "Support"

    assert_scim_error(
        await api.client.post("/scim/v2/Groups", json={"displayName": "Support"}, headers=tenant.scim),
        409,
        "uniqueness",
    )
    assert_scim_error(
        await api.client.post("/scim/v2/Groups", json={"displayName": "admin"}, headers=tenant.scim),
        409,
        "uniqueness",
    )
    assert_scim_error(
        await api.client.post("/scim/v2/Groups", json={"displayName": "Sales Team"}, headers=tenant.scim),
        400,
        "invalidValue",
    )

    # PATCH add moves Ben from USER to Support; remove (RFC filter form) sends Ann back to USER.
    added = await api.client.patch(
        "/scim/v2/Groups/Support",
        json=patch_body({"op": "add", "path": "members", "value": [{"value": ben["id"]}]}),
        headers=tenant.scim,
    )
    assert {m["value"] for m in added.json()["members"]} == {ann["id"], ben["id"]}
    removed = await api.client.patch(
        "/scim/v2/Groups/Support",
        json=patch_body({"op": "remove", "path": f'members[value eq "{ann["id"]}"]'}),
        headers=tenant.scim,
    )
    assert [m["value"] for m in removed.json()["members"]] == [ben["id"]]
    member_roles = {
        m["email"]: m["role"] for m in (await api.client.get("/users", headers=tenant.admin)).json()["items"]
    }
    assert member_roles == {**member_roles, "user0@example.com": "USER", "user1@example.com": "Support"}

    assert_scim_error(await api.client.delete("/scim/v2/Groups/Support", headers=tenant.scim), 409)
    put = await api.client.put(
        "/scim/v2/Groups/Support", json={"displayName": "Support", "members": []}, headers=tenant.scim
    )
    assert put.status_code == 200 and not put.json().get("members")
    assert_scim_error(
        await api.client.put("/scim/v2/Groups/Support", json={"displayName": "Other"}, headers=tenant.scim),
        400,
        "mutability",
    )
    assert (await api.client.delete("/scim/v2/Groups/Support", headers=tenant.scim)).status_code == 204
    assert_scim_error(await api.client.get("/scim/v2/Groups/Support", headers=tenant.scim), 404)
    assert_scim_error(await api.client.delete("/scim/v2/Groups/ADMIN", headers=tenant.scim), 403)
    assert_scim_error(await api.client.delete("/scim/v2/Groups/SUPER_ADMIN", headers=tenant.scim), 403)
    assert_scim_error(await api.client.get("/scim/v2/Groups/SUPER_ADMIN", headers=tenant.scim), 404)
    assert_scim_error(
        await api.client.patch(
            "/scim/v2/Groups/ADMIN",
            json=patch_body({"op": "add", "path": "members", "value": [{"value": "not-a-user"}]}),
            headers=tenant.scim,
        ),
        400,
        "invalidValue",
    )
