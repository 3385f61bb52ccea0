"""``GET /auth/tenants``: the tenants the caller belongs to, to choose one and switch."""

from __future__ import annotations

from tests.auth.conftest import Api
from tests.helpers import assert_problem


async def test_lists_the_callers_memberships_with_role_and_current(api: Api) -> None:
    own = await api.register("multi@example.com", tenant_name="One")
    other = await api.register("owner2@example.com", tenant_name="Two")
    stranger = await api.register("stranger@example.com", tenant_name="Three")
    owner2 = await api.login("owner2@example.com")
    invite = await api.client.post(
        "/users/invitations", json={"email": "multi@example.com", "role": "USER"}, headers=api.bearer(owner2)
    )
    tokens = await api.login("multi@example.com")
    accepted = await api.client.post(
        "/auth/invitations/accept",
        json={"invite_token": invite.json()["invite_token"]},
        headers=api.bearer(tokens),
    )
    assert accepted.status_code == 200, accepted.text

    listed = await api.client.get("/auth/tenants", headers=api.bearer(tokens))
    assert listed.status_code == 200, listed.text
    assert listed.headers["cache-control"] == "no-store"
    body = listed.json()
    assert body["next_cursor"] is None
    by_slug = {item["slug"]: item for item in body["items"]}
    assert set(by_slug) == {own["tenant"]["slug"], other["tenant"]["slug"]}  # never a stranger's tenant
    assert stranger["tenant"]["slug"] not in by_slug
    assert by_slug[own["tenant"]["slug"]] == {
        "id": own["tenant"]["id"],
        "slug": own["tenant"]["slug"],
        "name": "One",
        "role": "ADMIN",
        "status": "active",
        "current": True,
    }
    assert by_slug[other["tenant"]["slug"]]["role"] == "USER"
    assert by_slug[other["tenant"]["slug"]]["current"] is False

    switched = await api.client.post(
        "/auth/switch-tenant", json={"tenant": other["tenant"]["slug"]}, headers=api.bearer(tokens)
    )
    after = (await api.client.get("/auth/tenants", headers=api.bearer(switched.json()))).json()
    current = [item["slug"] for item in after["items"] if item["current"]]
    assert current == [other["tenant"]["slug"]]


async def test_requires_a_signed_in_user(api: Api) -> None:
    assert_problem(await api.client.get("/auth/tenants"), 401)
    assert_problem(await api.client.get("/auth/tenants", headers={"Authorization": "Bearer forged"}), 401)
