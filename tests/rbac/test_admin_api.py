"""The administration API, escalation attempts, and immediate role changes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import Api, assert_problem, eventually


async def join(api: Api, admin: dict[str, str], email: str, role: str = "USER") -> dict[str, str]:
    invite = await api.client.post("/users/invitations", json={"email": email, "role": role}, headers=admin)
    assert invite.status_code == 201, invite.text
    registered = await api.client.post(
        "/auth/register",
        json={"email": email, "password": "password123", "invite_token": invite.json()["invite_token"]},
    )
    assert registered.status_code == 201, registered.text
    api.passwords[email] = "password123"
    return api.bearer(await api.login(email))


async def user_id(api: Api, headers: dict[str, str]) -> str:
    return str((await api.client.get("/auth/me", headers=headers)).json()["id"])


ADMIN_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/users", None),
    ("POST", "/users/invitations", {"email": "matrix@example.com", "role": "USER"}),
    ("GET", "/roles", None),
    ("POST", "/roles", {"name": "matrix_role", "permissions": ["users.read"]}),
]


async def test_matrix_of_framework_routes_by_role(api: Api) -> None:
    await api.register("admin@example.com")
    admin = api.bearer(await api.login("admin@example.com"))
    user = await join(api, admin, "user@example.com")
    for method, path, body in ADMIN_ROUTES:
        assert_problem(await api.client.request(method, path, json=body), 401)
        assert_problem(await api.client.request(method, path, json=body, headers=user), 403)
        assert (await api.client.request(method, path, json=body, headers=admin)).status_code in (200, 201), (
            path
        )
    for method, path in [("GET", "/admin/tenants"), ("PATCH", f"/admin/tenants/{'0' * 32}")]:
        assert_problem(await api.client.request(method, path, json={"status": "active"}, headers=admin), 403)
        assert_problem(await api.client.request(method, path, json={"status": "active"}, headers=user), 403)
        assert_problem(await api.client.request(method, path, json={"status": "active"}), 401)


async def test_list_members(api: Api) -> None:
    await api.register("admin@example.com")
    admin = api.bearer(await api.login("admin@example.com"))
    await join(api, admin, "user@example.com")
    members = (await api.client.get("/users", headers=admin)).json()
    assert {(m["email"], m["role"]) for m in members["items"]} == {
        ("admin@example.com", "ADMIN"),
        ("user@example.com", "USER"),
    }
    assert members["next_cursor"] is None


async def test_escalation_attempts_fail(api: Api) -> None:
    await api.register("admin@example.com")
    admin = api.bearer(await api.login("admin@example.com"))
    admin_id = await user_id(api, admin)
    # a custom role that may invite and change roles, but holds nothing else
    created = await api.client.post(
        "/roles",
        json={"name": "recruiter", "permissions": ["users.invite", "users.update", "users.read"]},
        headers=admin,
    )
    assert created.status_code == 201
    recruiter = await join(api, admin, "recruiter@example.com", role="recruiter")
    recruiter_id = await user_id(api, recruiter)
    plain = await join(api, admin, "plain@example.com")
    plain_id = await user_id(api, plain)

    # grant a stronger role than one's own
    assert_problem(
        await api.client.post(
            "/users/invitations", json={"email": "x@example.com", "role": "ADMIN"}, headers=recruiter
        ),
        403,
    )
    assert_problem(
        await api.client.patch(f"/users/{plain_id}/role", json={"role": "ADMIN"}, headers=recruiter), 403
    )
    # SUPER_ADMIN is never granted through the API, not even by an ADMIN
    assert_problem(
        await api.client.post(
            "/users/invitations", json={"email": "y@example.com", "role": "SUPER_ADMIN"}, headers=admin
        ),
        403,
    )
    # edit one's own role
    assert_problem(
        await api.client.patch(f"/users/{recruiter_id}/role", json={"role": "ADMIN"}, headers=recruiter), 403
    )
    assert_problem(
        await api.client.patch(f"/users/{admin_id}/role", json={"role": "USER"}, headers=admin), 403
    )
    # touch someone stronger
    assert_problem(
        await api.client.patch(f"/users/{admin_id}/role", json={"role": "USER"}, headers=recruiter), 403
    )
    # create a role with permissions one lacks
    roles_manager = await api.client.post(
        "/roles", json={"name": "rolesmith", "permissions": ["roles.manage"]}, headers=admin
    )
    assert roles_manager.status_code == 201
    smith = await join(api, admin, "smith@example.com", role="rolesmith")
    assert_problem(
        await api.client.post("/roles", json={"name": "mega", "permissions": ["users.*"]}, headers=smith), 403
    )
    assert_problem(
        await api.client.patch("/roles/rolesmith", json={"permissions": ["*"]}, headers=smith), 403
    )
    # redefine a built-in role
    assert_problem(
        await api.client.post("/roles", json={"name": "ADMIN", "permissions": ["users.read"]}, headers=admin),
        409,
    )
    assert_problem(
        await api.client.patch("/roles/USER", json={"permissions": ["users.read"]}, headers=admin), 403
    )
    # unknown permission codes are listed
    bad = assert_problem(
        await api.client.post(
            "/roles", json={"name": "bad", "permissions": ["nope.read", "users.read"]}, headers=admin
        ),
        422,
    )
    assert [e["loc"] for e in bad["errors"]] == [["body", "permissions", 0]]  # type: ignore[index]
    # the recruiter may still do what its role allows
    assert (
        await api.client.patch(f"/users/{plain_id}/role", json={"role": "recruiter"}, headers=recruiter)
    ).status_code == 200


async def test_other_tenants_users_are_invisible(api: Api) -> None:
    await api.register("a@example.com", tenant_name="A")
    await api.register("b@example.com", tenant_name="B")
    a = api.bearer(await api.login("a@example.com"))
    b = api.bearer(await api.login("b@example.com"))
    b_id = await user_id(api, b)
    assert_problem(await api.client.patch(f"/users/{b_id}/role", json={"role": "USER"}, headers=a), 404)
    assert_problem(await api.client.delete(f"/users/{b_id}", headers=a), 404)
    assert_problem(await api.client.delete("/users/not-a-uuid", headers=a), 404)
    assert (await api.client.get("/auth/me", headers=b)).json()["role"] == "ADMIN"


async def test_last_admin_cannot_be_demoted_or_removed(api: Api) -> None:
    await api.register("solo@example.com")
    solo = api.bearer(await api.login("solo@example.com"))
    second = await join(api, solo, "second@example.com", role="ADMIN")
    solo_id = await user_id(api, solo)
    second_id = await user_id(api, second)
    assert (
        await api.client.patch(f"/users/{second_id}/role", json={"role": "USER"}, headers=solo)
    ).status_code == 200
    assert_problem(await api.client.delete(f"/users/{solo_id}", headers=solo), 409)
    second = api.bearer(await api.login("second@example.com"))
    assert_problem(
        await api.client.patch(f"/users/{solo_id}/role", json={"role": "USER"}, headers=second), 403
    )


async def test_removal_ends_the_members_sessions_in_that_tenant(api: Api) -> None:
    await api.register("boss@example.com")
    boss = api.bearer(await api.login("boss@example.com"))
    worker = await join(api, boss, "worker@example.com")
    assert (await api.client.get("/auth/me", headers=worker)).status_code == 200
    worker_id = await user_id(api, worker)
    assert (await api.client.delete(f"/users/{worker_id}", headers=boss)).status_code == 204
    assert_problem(await api.client.get("/auth/me", headers=worker), 401)
    members = (await api.client.get("/users", headers=boss)).json()["items"]
    assert [m["email"] for m in members] == ["boss@example.com"]


async def test_custom_roles_crud(api: Api) -> None:
    await api.register("admin@example.com")
    admin = api.bearer(await api.login("admin@example.com"))
    created = await api.client.post(
        "/roles",
        json={"name": "auditor", "permissions": ["audit.*", "users.read"], "description": "reads"},
        headers=admin,
    )
    assert created.status_code == 201
    assert created.json()["permissions"] == ["audit.read", "users.read"]
    assert_problem(
        await api.client.post("/roles", json={"name": "auditor", "permissions": []}, headers=admin), 409
    )
    listing = (await api.client.get("/roles", headers=admin)).json()["items"]
    assert {r["name"] for r in listing} >= {"USER", "ADMIN", "auditor"}
    assert "SUPER_ADMIN" not in {r["name"] for r in listing}
    auditor = await join(api, admin, "aud@example.com", role="auditor")
    me = (await api.client.get("/auth/me", headers=auditor)).json()
    assert me["permissions"] == ["audit.read", "users.read"]
    assert_problem(await api.client.delete("/roles/auditor", headers=admin), 409)  # still held
    patched = await api.client.patch("/roles/auditor", json={"permissions": ["users.read"]}, headers=admin)
    assert patched.json()["permissions"] == ["users.read"]
    assert (await api.client.get("/auth/me", headers=auditor)).json()["permissions"] == ["users.read"]
    assert_problem(await api.client.delete("/roles/nope", headers=admin), 404)


async def test_role_change_is_immediate_on_another_instance(
    two_instances: tuple[Api, httpx.AsyncClient],
) -> None:
    api, b = two_instances
    a = api.client
    await api.register("admin@example.com")
    admin = api.bearer(await api.login("admin@example.com"))
    member = await join(api, admin, "member@example.com")
    member_id = await user_id(api, member)
    assert_problem(await b.get("/users", headers=member), 403)  # B caches the USER role
    assert (
        await a.patch(f"/users/{member_id}/role", json={"role": "ADMIN"}, headers=admin)
    ).status_code == 200
    # same token, no new login: B answers with the new role once the invalidation arrives
    assert (await eventually(lambda: b.get("/users", headers=member), 200)).status_code == 200
    assert (
        await a.patch(f"/users/{member_id}/role", json={"role": "USER"}, headers=admin)
    ).status_code == 200
    assert_problem(await eventually(lambda: b.get("/users", headers=member), 403), 403)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_superadmin_manages_tenants(api: Api) -> None:
    from tenantkit.admin import create_superadmin

    tenant = await api.register("owner@example.com", tenant_name="Suspendable")
    owner = api.bearer(await api.login("owner@example.com"))
    await create_superadmin(api.kit, "root@example.com", "root-password-1")
    api.passwords["root@example.com"] = "root-password-1"
    root = api.bearer(await api.login("root@example.com"))
    listing = await api.client.get("/admin/tenants", headers=root)
    assert listing.status_code == 200
    assert tenant["tenant"]["slug"] in {t["slug"] for t in listing.json()["items"]}
    suspended = await api.client.patch(
        f"/admin/tenants/{tenant['tenant']['id']}", json={"status": "suspended"}, headers=root
    )
    assert suspended.json()["status"] == "suspended"
    assert_problem(await api.client.get("/auth/me", headers=owner), 403)
    assert_problem(
        await api.client.post(
            "/auth/login", json={"email": "owner@example.com", "password": api.passwords["owner@example.com"]}
        ),
        403,
    )
    assert_problem(
        await api.client.patch(
            f"/admin/tenants/{tenant['tenant']['id']}", json={"status": "gone"}, headers=root
        ),
        422,
    )
    await api.client.patch(
        f"/admin/tenants/{tenant['tenant']['id']}", json={"status": "active"}, headers=root
    )
    assert (await api.client.get("/auth/me", headers=owner)).status_code == 200
