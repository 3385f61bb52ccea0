"""Membership changes through the one owner: operator paths, and the last ADMIN under races."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tenantkit import TenantKit, hookimpl
from tenantkit.admin import create_superadmin, create_tenant, create_user
from tenantkit.errors import ConflictError
from tenantkit.mail import MemoryMailer
from tenantkit.rbac.roles import ADMIN, USER
from tests.helpers import Api


class Recorder:
    def __init__(self) -> None:
        self.memberships: list[dict[str, Any]] = []
        self.tenants: list[str] = []
        self.audits: list[dict[str, Any]] = []

    @hookimpl
    def tenantkit_on_membership_changed(
        self, tenant_id: str, user_id: str, role: str | None, actor_id: str | None
    ) -> None:
        self.memberships.append({"tenant_id": tenant_id, "user_id": user_id, "role": role})

    @hookimpl
    def tenantkit_on_tenant_created(self, tenant: Any, owner_id: str | None) -> None:
        self.tenants.append(tenant.slug)

    @hookimpl
    def tenantkit_on_audit_event(self, event: dict[str, Any]) -> None:
        self.audits.append(event)


async def test_operator_commands_emit_the_hook_and_the_audit_row(
    kit_factory: Callable[..., TenantKit],
) -> None:
    recorder = Recorder()
    kit = kit_factory(plugins=[recorder], mailer=MemoryMailer())
    await kit.startup()
    tenant = await create_tenant(kit, "Operated", "operated")
    user_id = await create_user(kit, "staff@example.com", "password123", tenant=tenant, role=USER)
    await until(lambda: any(e["action"] == "membership.added" for e in recorder.audits))
    assert "operated" in recorder.tenants
    assert recorder.memberships == [{"tenant_id": str(tenant.id), "user_id": str(user_id), "role": USER}]
    added = [e for e in recorder.audits if e["action"] == "membership.added"]
    assert [(e["tenant_id"], e["target"], e["data"]) for e in added] == [
        (str(tenant.id), str(user_id), {"role": USER, "via": "cli"})
    ]
    assert any(e["action"] == "user.created" for e in recorder.audits)
    # the operator may create the platform tenant, which sign-up never hands out
    await create_superadmin(kit, "root@example.com", "root-password-1")
    assert (await kit.directory.find("platform")) is not None


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait for background work (the audit hook runs after the request)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)


async def _two_admins(kit: TenantKit, round_: int, x: uuid.UUID, y: uuid.UUID) -> Any:
    tenant = await kit.tenancy.create_tenant(f"Race {round_}", f"race-{round_}", owner_id=x, via="test")
    await kit.tenancy.add_member(tenant, y, ADMIN, via="test")
    return tenant


async def test_the_last_admin_holds_under_concurrent_demotions(kit_factory: Callable[..., TenantKit]) -> None:
    """20 rounds of two ADMINs demoting (or removing) each other at once: exactly one wins."""
    kit = kit_factory(mailer=MemoryMailer())
    await kit.startup()
    x = await create_user(kit, "x@example.com", "password123")
    y = await create_user(kit, "y@example.com", "password123")
    admin = kit.roles.builtin(ADMIN)
    for round_ in range(20):
        tenant = await _two_admins(kit, round_, x, y)
        service = kit.tenancy
        if round_ % 2:
            first = service.change_role(tenant, y, USER, actor_id=x, actor_permissions=admin)
            second = service.change_role(tenant, x, USER, actor_id=y, actor_permissions=admin)
        else:
            first = service.remove_member(tenant, y, actor_id=x, actor_permissions=admin)
            second = service.change_role(tenant, x, USER, actor_id=y, actor_permissions=admin)
        results = await asyncio.gather(first, second, return_exceptions=True)
        conflicts = [r for r in results if isinstance(r, ConflictError)]
        assert len(conflicts) == 1, results
        assert not [r for r in results if isinstance(r, BaseException) and r not in conflicts], results
        members = await service.list_members(tenant)
        assert [m.role for m in members].count(ADMIN) == 1, (round_, members)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_the_last_admin_holds_under_concurrent_http_demotions(api: Api) -> None:
    """The same race over HTTP on PostgreSQL: one 200, the other 409 (or 403 once demoted)."""
    await api.register("x@example.com", tenant_name="Http race")
    x = api.bearer(await api.login("x@example.com"))
    x_id = (await api.client.get("/auth/me", headers=x)).json()["id"]
    invite = await api.client.post(
        "/users/invitations", json={"email": "y@example.com", "role": ADMIN}, headers=x
    )
    token = invite.json()["invite_token"]
    joined = await api.client.post(
        "/auth/register", json={"email": "y@example.com", "password": "password123", "invite_token": token}
    )
    assert joined.status_code == 201, joined.text
    api.passwords["y@example.com"] = "password123"
    y = api.bearer(await api.login("y@example.com"))
    y_id = joined.json()["user"]["id"]
    for _ in range(20):
        demote_y = api.client.patch(f"/users/{y_id}/role", json={"role": USER}, headers=x)
        demote_x = api.client.patch(f"/users/{x_id}/role", json={"role": USER}, headers=y)
        answers = sorted(r.status_code for r in await asyncio.gather(demote_y, demote_x))
        assert answers in ([200, 403], [200, 409]), answers
        winner = x if await _is_admin(api, x) else y
        members = (await api.client.get("/users", headers=winner)).json()
        assert [m["role"] for m in members["items"]].count(ADMIN) == 1
        # restore both as ADMIN for the next round
        loser_id = y_id if winner is x else x_id
        restored = await api.client.patch(f"/users/{loser_id}/role", json={"role": ADMIN}, headers=winner)
        assert restored.status_code == 200, restored.text


async def _is_admin(api: Api, headers: dict[str, str]) -> bool:
    return bool((await api.client.get("/auth/me", headers=headers)).json()["role"] == ADMIN)
