"""Invitations over HTTP: listing, revocation, and what dies with the inviter's right to invite."""

from __future__ import annotations

import uuid

from tests.helpers import Api, assert_problem

PASSWORD = "password123"


async def invite(api: Api, headers: dict[str, str], email: str, role: str = "USER") -> dict[str, str]:
    response = await api.client.post(
        "/users/invitations", json={"email": email, "role": role}, headers=headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def register_with(api: Api, email: str, token: str) -> dict[str, object]:
    response = await api.client.post(
        "/auth/register", json={"email": email, "password": PASSWORD, "invite_token": token}
    )
    api.passwords[email] = PASSWORD
    return {"status": response.status_code, "body": response.json()}


async def join(api: Api, admin: dict[str, str], email: str, role: str = "USER") -> dict[str, str]:
    created = await invite(api, admin, email, role)
    joined = await register_with(api, email, created["invite_token"])
    assert joined["status"] == 201, joined
    return api.bearer(await api.login(email))


async def me(api: Api, headers: dict[str, str]) -> str:
    return str((await api.client.get("/auth/me", headers=headers)).json()["id"])


async def test_pending_invitations_are_listed_without_tokens_and_can_be_revoked(api: Api) -> None:
    await api.register("boss@example.com", tenant_name="Listing")
    boss = api.bearer(await api.login("boss@example.com"))
    first = await invite(api, boss, "first@example.com")
    second = await invite(api, boss, "second@example.com", role="ADMIN")

    listed = await api.client.get("/users/invitations", headers=boss)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert listed.json()["next_cursor"] is None
    assert {(i["email"], i["role"]) for i in items} == {
        ("first@example.com", "USER"),
        ("second@example.com", "ADMIN"),
    }
    assert all(set(i) == {"id", "email", "role", "invited_by", "created_at", "expires_at"} for i in items)
    assert first["invite_token"] not in listed.text and second["invite_token"] not in listed.text
    assert {i["invited_by"] for i in items} == {await me(api, boss)}

    assert (await api.client.delete(f"/users/invitations/{first['id']}", headers=boss)).status_code == 204
    assert [
        i["email"] for i in (await api.client.get("/users/invitations", headers=boss)).json()["items"]
    ] == ["second@example.com"]
    # the token is dead at once; revoking again, or an unknown id, is 404
    dead = await register_with(api, "first@example.com", first["invite_token"])
    assert dead["status"] == 404
    assert_problem(await api.client.delete(f"/users/invitations/{first['id']}", headers=boss), 404)
    assert_problem(await api.client.delete(f"/users/invitations/{uuid.uuid4()}", headers=boss), 404)
    assert_problem(await api.client.delete("/users/invitations/not-a-uuid", headers=boss), 404)

    # a used invitation is no longer pending, and cannot be revoked
    assert (await register_with(api, "second@example.com", second["invite_token"]))["status"] == 201
    assert (await api.client.get("/users/invitations", headers=boss)).json()["items"] == []
    assert_problem(await api.client.delete(f"/users/invitations/{second['id']}", headers=boss), 404)


async def test_listing_and_revoking_need_users_invite_and_stay_in_the_tenant(api: Api) -> None:
    await api.register("a@example.com", tenant_name="A")
    await api.register("b@example.com", tenant_name="B")
    a = api.bearer(await api.login("a@example.com"))
    b = api.bearer(await api.login("b@example.com"))
    pending = await invite(api, a, "guest@example.com")
    user = await join(api, a, "plain@example.com")
    assert_problem(await api.client.get("/users/invitations"), 401)
    assert_problem(await api.client.get("/users/invitations", headers=user), 403)
    assert_problem(await api.client.delete(f"/users/invitations/{pending['id']}", headers=user), 403)
    # another tenant's ADMIN sees nothing of it and cannot revoke it
    assert (await api.client.get("/users/invitations", headers=b)).json()["items"] == []
    assert_problem(await api.client.delete(f"/users/invitations/{pending['id']}", headers=b), 404)
    assert (await register_with(api, "guest@example.com", pending["invite_token"]))["status"] == 201


async def test_an_invitation_dies_with_its_removed_inviter(api: Api) -> None:
    """The review's exploit: an ADMIN invites another address of theirs, is removed, accepts."""
    await api.register("owner@example.com", tenant_name="Exploited")
    owner = api.bearer(await api.login("owner@example.com"))
    rogue = await join(api, owner, "rogue@example.com", role="ADMIN")
    rogue_id = await me(api, rogue)
    backdoor = await invite(api, rogue, "rogue-alt@example.com", role="ADMIN")
    # the same for an existing account of theirs, accepting while signed in
    await api.register("rogue-other@example.com", tenant_name="Rogue's own")
    other = api.bearer(await api.login("rogue-other@example.com"))
    backdoor2 = await invite(api, rogue, "rogue-other@example.com", role="ADMIN")

    assert (await api.client.delete(f"/users/{rogue_id}", headers=owner)).status_code == 204

    assert (await api.client.get("/users/invitations", headers=owner)).json()["items"] == []
    dead = await register_with(api, "rogue-alt@example.com", backdoor["invite_token"])
    assert dead["status"] == 404, dead
    accepted = await api.client.post(
        "/auth/invitations/accept", json={"invite_token": backdoor2["invite_token"]}, headers=other
    )
    assert_problem(accepted, 404)
    members = (await api.client.get("/users", headers=owner)).json()["items"]
    assert [m["email"] for m in members] == ["owner@example.com"]


async def test_accepting_never_grants_more_than_the_inviter_holds_now(api: Api) -> None:
    await api.register("owner@example.com", tenant_name="Demotion")
    owner = api.bearer(await api.login("owner@example.com"))
    created = await api.client.post(
        "/roles", json={"name": "recruiter", "permissions": ["users.invite", "users.read"]}, headers=owner
    )
    assert created.status_code == 201, created.text
    inviter = await join(api, owner, "inviter@example.com", role="ADMIN")
    inviter_id = await me(api, inviter)
    as_admin = await invite(api, inviter, "too-high@example.com", role="ADMIN")
    as_user = await invite(api, inviter, "fine@example.com", role="USER")

    demoted = await api.client.patch(f"/users/{inviter_id}/role", json={"role": "recruiter"}, headers=owner)
    assert demoted.status_code == 200, demoted.text

    listed = (await api.client.get("/users/invitations", headers=owner)).json()["items"]
    assert [i["email"] for i in listed] == ["fine@example.com"]
    assert (await register_with(api, "too-high@example.com", as_admin["invite_token"]))["status"] == 404
    fine = await register_with(api, "fine@example.com", as_user["invite_token"])
    assert fine["status"] == 201 and fine["body"]["role"] == "USER"  # type: ignore[index]

    # once the inviter may no longer invite at all, even a USER invitation dies
    last = await invite(api, inviter, "late@example.com", role="USER")
    await api.client.patch(f"/users/{inviter_id}/role", json={"role": "USER"}, headers=owner)
    assert (await register_with(api, "late@example.com", last["invite_token"]))["status"] == 404


async def test_registering_a_platform_name_gets_another_slug(api: Api) -> None:
    for index, name in enumerate(["platform", "Admin", "API", "auth", "www", "t"]):
        registered = await api.register(f"squatter{index}@example.com", tenant_name=name)
        slug = registered["tenant"]["slug"]
        assert slug != name.lower() and slug.startswith(name.lower() + "-"), slug
