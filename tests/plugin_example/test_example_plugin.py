"""The example plugin distribution: each hook has its effect over HTTP."""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import AsyncIterator, Callable
from typing import Any

import jwt
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tenantkit_example_plugin import LOGINS_READ, ExamplePlugin

from tenantkit import TenantKit
from tenantkit.mail import MemoryMailer
from tenantkit.rbac import authorize, requires_permissions
from tests.helpers import Api, assert_problem, serve
from tests.plugin_example.conftest import EXAMPLE_DIR

PASSWORD = "correct horse battery"


@requires_permissions("notes.read")
async def read_note(request: Request) -> JSONResponse:
    note = {"id": request.path_params["owner"], "owner_id": request.path_params["owner"]}
    await authorize(request, "notes.read", note)
    return JSONResponse(note)


@pytest.fixture
async def setup(kit_factory: Callable[..., TenantKit]) -> AsyncIterator[tuple[Api, ExamplePlugin]]:
    plugin = ExamplePlugin()
    kit = kit_factory(
        plugins=[plugin],
        permissions=[("notes.read", "Read notes")],
        user_permissions=["notes.read"],
        mailer=MemoryMailer(),
    )
    routes = [Route("/notes/{owner}", read_note), *plugin.routes()]
    async with serve(kit.build_app(routes=routes), base_url="https://testserver") as client:
        assert isinstance(kit.mailer, MemoryMailer)
        yield Api(client, kit, kit.mailer), plugin


async def _admin_and_user(api: Api) -> tuple[dict[str, Any], dict[str, Any], str]:
    """An ADMIN (who created the tenant) and a USER invited into it; returns both token sets."""
    owner = await api.register("owner@example.com", PASSWORD, tenant_name="Acme")
    tenant_id = owner["tenant"]["id"]
    admin = await api.login("owner@example.com")
    invited = await api.client.post(
        "/users/invitations", json={"email": "member@example.com", "role": "USER"}, headers=api.bearer(admin)
    )
    assert invited.status_code == 201, invited.text
    await api.register("member@example.com", PASSWORD, invite_token=invited.json()["invite_token"])
    member = await api.login("member@example.com")
    return admin, member, tenant_id


def _claims(tokens: dict[str, Any]) -> dict[str, Any]:
    return dict(jwt.decode(tokens["access_token"], options={"verify_signature": False}))


async def test_permission_is_registered_and_granted_to_admin(setup: tuple[Api, ExamplePlugin]) -> None:
    api, _ = setup
    admin, member, _ = await _admin_and_user(api)
    assert LOGINS_READ in api.kit.permissions
    me = await api.client.get("/auth/me", headers=api.bearer(admin))
    assert LOGINS_READ in me.json()["permissions"]
    me = await api.client.get("/auth/me", headers=api.bearer(member))
    assert LOGINS_READ not in me.json()["permissions"]
    roles = await api.client.get("/roles", headers=api.bearer(admin))
    admin_role = next(r for r in roles.json()["items"] if r["name"] == "ADMIN")
    assert LOGINS_READ in admin_role["permissions"]


async def test_claim_is_added_to_login_and_refreshed_tokens(setup: tuple[Api, ExamplePlugin]) -> None:
    api, _ = setup
    await api.register("owner@example.com", PASSWORD, tenant_name="Acme")
    tokens = await api.login("owner@example.com")
    assert _claims(tokens)["amr"] == ["pwd"]
    refreshed = await api.client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    assert _claims(refreshed.json())["amr"] == ["pwd"]
    # the verified principal carries the plugin's claim too
    assert api.kit.tokens.verify(refreshed.json()["access_token"]).claims["amr"] == ["pwd"]


async def test_registered_claims_cannot_be_overridden(kit_factory: Callable[..., TenantKit]) -> None:
    plugin = ExamplePlugin(claims={"role": "SUPER_ADMIN", "tid": "someone-else", "plan": "gold"})
    kit = kit_factory(plugins=[plugin])
    async with serve(kit.build_app(), base_url="https://testserver") as client:
        api = Api(client, kit, MemoryMailer())
        created = await api.register("owner@example.com", PASSWORD, tenant_name="Acme")
        claims = _claims(await api.login("owner@example.com"))
    assert claims["plan"] == "gold"
    assert claims["role"] == "ADMIN"
    assert claims["tid"] == created["tenant"]["id"]


async def test_ownership_rule_is_enforced(setup: tuple[Api, ExamplePlugin]) -> None:
    api, _ = setup
    admin, member, _ = await _admin_and_user(api)
    member_id = (await api.client.get("/auth/me", headers=api.bearer(member))).json()["id"]
    admin_id = (await api.client.get("/auth/me", headers=api.bearer(admin))).json()["id"]

    own = await api.client.get(f"/notes/{member_id}", headers=api.bearer(member))
    assert own.status_code == 200, own.text
    assert_problem(await api.client.get(f"/notes/{admin_id}", headers=api.bearer(member)), 403)
    # an ADMIN is left to the role's permissions, which grant notes.read
    other = await api.client.get(f"/notes/{member_id}", headers=api.bearer(admin))
    assert other.status_code == 200, other.text


async def test_policies_see_the_live_role_not_the_tokens(setup: tuple[Api, ExamplePlugin]) -> None:
    api, _ = setup
    admin, member, _ = await _admin_and_user(api)
    member_id = (await api.client.get("/auth/me", headers=api.bearer(member))).json()["id"]
    admin_id = (await api.client.get("/auth/me", headers=api.bearer(admin))).json()["id"]
    assert_problem(await api.client.get(f"/notes/{admin_id}", headers=api.bearer(member)), 403)
    promoted = await api.client.patch(
        f"/users/{member_id}/role", json={"role": "ADMIN"}, headers=api.bearer(admin)
    )
    assert promoted.status_code == 200, promoted.text
    # same access token (its role claim still says USER): the rule now exempts an ADMIN
    again = await api.client.get(f"/notes/{admin_id}", headers=api.bearer(member))
    assert again.status_code == 200, again.text


async def test_logins_are_recorded_and_served_per_tenant(setup: tuple[Api, ExamplePlugin]) -> None:
    api, plugin = setup
    admin, member, tenant_id = await _admin_and_user(api)
    bad = await api.client.post(
        "/auth/login", json={"email": "owner@example.com", "password": "wrong password"}
    )
    assert_problem(bad, 401)
    assert [f["reason"] for f in plugin.failures] == ["invalid_credentials"]
    assert plugin.failures[0]["email"] == "owner@example.com"

    # a second tenant's sign-in must not show up in Acme's list
    await api.register("other@example.com", PASSWORD, tenant_name="Other")
    await api.login("other@example.com")
    assert len(plugin.logins) == 3

    listed = await api.client.get("/example/logins", headers=api.bearer(admin))
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert len(items) == 2
    assert {item["tenant_id"] for item in items} == {tenant_id}
    assert items[0]["ip"] == "203.0.113.7"
    assert {item["session_id"] for item in items} == {
        str(api.kit.tokens.verify(t["access_token"]).session_id) for t in (admin, member)
    }
    # USER lacks logins.read; anonymous callers are refused first
    assert_problem(await api.client.get("/example/logins", headers=api.bearer(member)), 403)
    assert_problem(await api.client.get("/example/logins"), 401)


def test_pyproject_declares_the_entry_point() -> None:
    data = tomllib.loads((EXAMPLE_DIR / "pyproject.toml").read_text())
    assert data["project"]["name"] == "tenantkit-example-plugin"
    assert "tenantkit" in data["project"]["dependencies"]
    target = data["project"]["entry-points"]["tenantkit"]["example"]
    module_name, _, attribute = target.partition(":")
    loaded = getattr(importlib.import_module(module_name), attribute)
    assert isinstance(loaded, ExamplePlugin)
    assert data["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["src/tenantkit_example_plugin"]


def test_entry_point_object_registers_with_the_plugin_manager() -> None:
    from tenantkit_example_plugin import plugin

    from tenantkit.plugins.manager import create_plugin_manager

    manager = create_plugin_manager([plugin], autoload=False)
    names = {caller.name for caller in manager.get_hookcallers(plugin) or []}
    assert names == {
        "tenantkit_configure",
        "tenantkit_register_permissions",
        "tenantkit_access_token_claims",
        "tenantkit_authorize",
        "tenantkit_on_login",
        "tenantkit_on_login_failed",
    }
