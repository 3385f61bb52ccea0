"""Impersonation over HTTP (API.md "service accounts, two-factor, impersonation"), on both backends."""

from __future__ import annotations

import uuid
from typing import Any

import jwt

from tenantkit import hookimpl
from tenantkit.admin import create_superadmin, create_user
from tenantkit.mail import MemoryMailer
from tests.auth.conftest import Api
from tests.helpers import assert_problem, serve


async def _tenant(api: Api) -> tuple[dict[str, Any], dict[str, str], str, str]:
    """A tenant with an ADMIN (signed in) and two members: a USER and another ADMIN."""
    registered = await api.register("boss@example.com", tenant_name="Acting")
    tenant = await api.kit.directory.get(uuid.UUID(registered["tenant"]["id"]))
    assert tenant is not None
    user = await create_user(api.kit, "clerk@example.com", "clerk-password", tenant=tenant, role="USER")
    peer = await create_user(api.kit, "peer@example.com", "peer-password", tenant=tenant, role="ADMIN")
    api.passwords.update({"clerk@example.com": "clerk-password", "peer@example.com": "peer-password"})
    return registered, api.bearer(await api.login("boss@example.com")), str(user), str(peer)


async def _impersonate(api: Api, headers: dict[str, str], user_id: str, **extra: Any) -> Any:
    body = {"user_id": user_id, "reason": "support ticket 4521", **extra}
    return await api.client.post("/auth/impersonate", json=body, headers=headers)


async def test_an_admin_acts_as_a_member_with_an_act_claim_and_no_refresh_token(api: Api) -> None:
    registered, boss, clerk, _ = await _tenant(api)
    started = await _impersonate(api, boss, clerk, minutes=10)
    assert started.status_code == 200, started.text
    body = started.json()
    assert set(body) == {"access_token", "token_type", "expires_in"} and 590 <= body["expires_in"] <= 600
    assert "set-cookie" not in started.headers
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == clerk and claims["act"] == {"sub": registered["user"]["id"]}

    as_clerk = api.bearer(body)
    me = (await api.client.get("/auth/me", headers=as_clerk)).json()
    assert me["id"] == clerk and me["role"] == "USER"
    assert me["impersonator"] == {"id": registered["user"]["id"], "email": "boss@example.com"}

    # The clerk sees it among their devices and can end it like any other.
    own = api.bearer(await api.login("clerk@example.com"))
    sessions = (await api.client.get("/auth/sessions", headers=own)).json()["items"]
    (impersonated,) = [s for s in sessions if s["impersonated_by"] is not None]
    assert impersonated["impersonated_by"] == {"id": registered["user"]["id"], "email": "boss@example.com"}
    ended = await api.client.delete(f"/auth/sessions/{impersonated['id']}", headers=own)
    assert ended.status_code == 204
    assert_problem(await api.client.get("/auth/me", headers=as_clerk), 401)


async def test_rules_reason_rank_and_read_only(api: Api) -> None:
    registered, boss, clerk, peer = await _tenant(api)
    no_reason = await api.client.post("/auth/impersonate", json={"user_id": clerk}, headers=boss)
    assert_problem(no_reason, 422)
    too_long = await _impersonate(api, boss, clerk, minutes=61)
    assert_problem(too_long, 422)
    assert_problem(await _impersonate(api, boss, peer), 403)  # an equal role
    assert_problem(await _impersonate(api, boss, registered["user"]["id"]), 403)  # oneself
    assert_problem(await _impersonate(api, boss, str(uuid.uuid4())), 404)
    clerk_own = api.bearer(await api.login("clerk@example.com"))
    assert_problem(await _impersonate(api, clerk_own, peer), 403)  # no users.impersonate

    read_only = api.bearer((await _impersonate(api, boss, clerk, read_only=True)).json())
    assert (await api.client.get("/auth/me", headers=read_only)).status_code == 200
    assert_problem(await api.client.post("/auth/logout", headers=read_only), 403)
    # An impersonation token cannot start another one.
    writable = api.bearer((await _impersonate(api, boss, clerk)).json())
    assert_problem(await _impersonate(api, writable, clerk), 403)


async def test_every_audit_row_under_it_names_both(api: Api) -> None:
    registered, boss, clerk, _ = await _tenant(api)
    tenant = await api.kit.directory.get(uuid.UUID(registered["tenant"]["id"]))
    assert tenant is not None
    await create_user(api.kit, "helper@example.com", "helper-password", tenant=tenant, role="ADMIN")
    api.passwords["helper@example.com"] = "helper-password"
    helper = api.bearer(await api.login("helper@example.com"))
    helper_id = (await api.client.get("/auth/me", headers=helper)).json()["id"]
    # A platform operator impersonates the second ADMIN, who then changes the clerk's role.
    await create_superadmin(api.kit, "root@example.com", "root-password-1")
    api.passwords["root@example.com"] = "root-password-1"
    operator = api.bearer(await api.login("root@example.com"))
    started = await _impersonate(api, operator, helper_id)
    assert started.status_code == 200, started.text
    as_helper = api.bearer(started.json())
    changed = await api.client.patch(f"/users/{clerk}/role", json={"role": "ADMIN"}, headers=as_helper)
    assert changed.status_code == 200, changed.text
    await api.kit.audit_log.flush()
    rows = (await api.client.get("/audit", params={"action": "membership.*"}, headers=boss)).json()["items"]
    (row,) = [r for r in rows if r["action"] == "membership.role_changed"]
    assert row["actor_id"] == helper_id
    operator_id = (await api.client.get("/auth/me", headers=operator)).json()["id"]
    assert row["data"]["impersonator_id"] == operator_id
    started_rows = (await api.client.get("/audit", params={"action": "impersonation.*"}, headers=boss)).json()
    assert started_rows["items"][0]["data"]["reason"] == "support ticket 4521"


class Veto:
    @hookimpl
    def tenantkit_authorize_impersonation(
        self, actor_id: str, user_id: str, tenant_id: str, reason: str, read_only: bool
    ) -> bool | None:
        return None if read_only else False


async def test_a_plugin_can_veto(kit_factory: Any) -> None:
    kit = kit_factory(plugins=[Veto()], mailer=MemoryMailer())
    async with serve(kit.build_app(), base_url="https://testserver") as client:
        api = Api(client, kit, MemoryMailer())
        _, boss, clerk, _ = await _tenant(api)
        assert_problem(await _impersonate(api, boss, clerk), 403)
        assert (await _impersonate(api, boss, clerk, read_only=True)).status_code == 200
