"""Per-membership revocation: leaving one tenant ends only that tenant's sessions, in every process."""

from __future__ import annotations

from typing import Any

from tests.helpers import Api, assert_problem, eventually


async def test_removal_ends_one_tenants_sessions_and_spares_the_others(
    two_instances: tuple[Api, Any],
) -> None:
    api, other_process = two_instances
    await api.register("a-owner@example.com", tenant_name="Alpha")
    await api.register("b-owner@example.com", tenant_name="Beta")
    alpha = api.bearer(await api.login("a-owner@example.com"))
    beta = api.bearer(await api.login("b-owner@example.com"))

    # One person, a member of both tenants.
    invites = []
    for admin in (alpha, beta):
        invite = await api.client.post(
            "/users/invitations", json={"email": "both@example.com", "role": "USER"}, headers=admin
        )
        assert invite.status_code == 201, invite.text
        invites.append(invite.json()["invite_token"])
    registered = await api.client.post(
        "/auth/register",
        json={"email": "both@example.com", "password": "password123", "invite_token": invites[0]},
    )
    assert registered.status_code == 201, registered.text
    api.passwords["both@example.com"] = "password123"
    in_alpha = await api.login("both@example.com")
    accepted = await api.client.post(
        "/auth/invitations/accept", json={"invite_token": invites[1]}, headers=api.bearer(in_alpha)
    )
    assert accepted.status_code == 200, accepted.text
    beta_id = accepted.json()["tenant"]["id"]
    in_beta = await api.login("both@example.com", **{"X-Tenant-ID": beta_id})
    member_id = (await api.client.get("/auth/me", headers=api.bearer(in_alpha))).json()["id"]
    for tokens in (in_alpha, in_beta):  # both processes have seen both tokens
        assert (await other_process.get("/auth/me", headers=api.bearer(tokens))).status_code == 200

    # A role change in Beta ends nothing; a removal from Alpha ends only Alpha's session.
    promoted = await api.client.patch(f"/users/{member_id}/role", json={"role": "ADMIN"}, headers=beta)
    assert promoted.status_code == 200, promoted.text
    me = await eventually(lambda: other_process.get("/users", headers=api.bearer(in_beta)), 200)
    assert me.status_code == 200  # the new role counts on the next request, same token
    removed = await api.client.delete(f"/users/{member_id}", headers=alpha)
    assert removed.status_code == 204
    gone = await eventually(lambda: other_process.get("/auth/me", headers=api.bearer(in_alpha)), 401)
    assert_problem(gone, 401)
    refreshed = await api.client.post("/auth/refresh", json={"refresh_token": in_alpha["refresh_token"]})
    assert_problem(refreshed, 401)
    assert (await other_process.get("/auth/me", headers=api.bearer(in_beta))).status_code == 200
    rotated = await api.client.post("/auth/refresh", json={"refresh_token": in_beta["refresh_token"]})
    assert rotated.status_code == 200
