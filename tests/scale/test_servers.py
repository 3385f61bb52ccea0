"""Many server processes behave as one: ``inventory-app serve --workers 2`` beside a second ``serve``.

Server A is ``serve --workers 2`` (two processes on one port; every request
opens a new connection, so either may answer), server B a separate ``serve``
on another port. All share this test's PostgreSQL database and Redis prefix.
A change made through one process is seen on the very next request by every
process, whichever answers.
"""

from __future__ import annotations

import pytest

from tests.scale.conftest import PASSWORD, Deployment

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def test_logout_role_change_and_removal_reach_every_process(deployment: Deployment) -> None:
    d = deployment
    registered = d.call(
        d.a,
        "POST",
        "/auth/register",
        json={"email": "owner@example.com", "password": PASSWORD, "tenant_name": "Acme"},
    )
    assert registered.status_code == 201, registered.text
    slug = registered.json()["tenant"]["slug"]
    owner = d.login(d.b, "owner@example.com")

    invited = d.call(
        d.a, "POST", "/users/invitations", owner, json={"email": "member@example.com", "role": "ADMIN"}
    )
    assert invited.status_code == 201, invited.text
    joined = d.call(
        d.b,
        "POST",
        "/auth/register",
        json={
            "email": "member@example.com",
            "password": PASSWORD,
            "invite_token": invited.json()["invite_token"],
        },
        headers={"X-Tenant-ID": slug},
    )
    assert joined.status_code == 201, joined.text
    member_id = joined.json()["user"]["id"]
    member = d.login(d.a, "member@example.com")
    d.everywhere("/users", member, 200)  # an ADMIN lists the members

    # A role change through B: the next request on any process sees USER.
    changed = d.call(d.b, "PATCH", f"/users/{member_id}/role", owner, json={"role": "USER"})
    assert changed.status_code == 200, changed.text
    d.everywhere("/users", member, 403)
    d.everywhere("/products", member, 200)
    assert d.call(d.a, "GET", "/auth/me", member).json()["role"] == "USER"

    # A logout through A: that session's token is refused by every process; the other session lives.
    second = d.login(d.b, "member@example.com")
    d.everywhere("/auth/me", second, 200)
    assert d.call(d.a, "POST", "/auth/logout", second).status_code == 204
    d.everywhere("/auth/me", second, 401)
    d.everywhere("/auth/me", member, 200)

    # A removal through A: the member's sessions in the tenant end everywhere.
    assert d.call(d.a, "DELETE", f"/users/{member_id}", owner).status_code == 204
    d.everywhere("/products", member, 401)
    d.everywhere("/auth/me", owner, 200)
