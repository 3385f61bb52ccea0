"""``/auth/sso/{tenant}/*``: a tenant's own provider (oidc-provider-mock) signs its domain's users in."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tenantkit import Settings, TenantKit, hookimpl
from tenantkit.mail import MemoryMailer
from tests.federation.conftest import CLIENT_ID, CLIENT_SECRET, MockOP, sign_in_mock
from tests.helpers import Api, assert_problem, serve


class RolePlugin:
    @hookimpl
    def tenantkit_map_federated_role(
        self, provider: str, claims: dict[str, Any], tenant_id: str
    ) -> str | None:
        return "ADMIN" if "admins" in (claims.get("groups") or []) else None


@pytest.fixture
async def sso_api(
    kit_factory: Callable[..., TenantKit], settings_factory: Callable[..., Settings]
) -> AsyncIterator[Api]:
    settings = settings_factory(env="development", sso_allow_hosts="127.0.0.1")
    kit = kit_factory(settings, mailer=MemoryMailer(), plugins=[RolePlugin()])
    async with serve(kit.build_app(), base_url="https://testserver") as client:
        yield Api(client, kit, MemoryMailer())


async def tenant_with_sso(api: Api, mock_op: MockOP) -> tuple[dict[str, Any], str, dict[str, str]]:
    """A tenant whose SSO is the mock provider for a fresh domain: (tenant, domain, admin headers)."""
    domain = f"acme-{uuid.uuid4().hex[:8]}.example"
    owner = f"owner@{domain}"
    tenant = (await api.register(owner, tenant_name="Acme " + domain))["tenant"]
    admin = api.bearer(await api.login(owner))
    body = {
        "issuer": mock_op.issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "domains": [domain],
        "enforce": False,
    }
    response = await api.client.put("/tenant/sso", json=body, headers=admin)
    assert response.status_code == 200, response.text
    return tenant, domain, admin


async def test_sso_creates_a_member_of_that_tenant(sso_api: Api, mock_op: MockOP) -> None:
    tenant, domain, _ = await tenant_with_sso(sso_api, mock_op)
    sub = "emp-" + uuid.uuid4().hex[:8]
    mock_op.set_user(sub, email=f"bob@{domain}", email_verified=True)
    response = await sign_in_mock(sso_api, sub, path=f"/auth/sso/{tenant['slug']}/authorize")
    assert response.status_code == 200, response.text
    me = (await sso_api.client.get("/auth/me", headers=Api.bearer(response.json()))).json()
    assert me["tenant"]["id"] == tenant["id"] and me["role"] == "USER" and me["email"] == f"bob@{domain}"
    identities = (await sso_api.client.get("/auth/identities", headers=Api.bearer(response.json()))).json()
    assert identities["items"][0]["provider"] == f"sso:{tenant['id']}"
    # Again: the same user, in the same tenant.
    again = await sign_in_mock(sso_api, sub, path=f"/auth/sso/{tenant['slug']}/authorize")
    assert again.status_code == 200
    me2 = (await sso_api.client.get("/auth/me", headers=Api.bearer(again.json()))).json()
    assert me2["id"] == me["id"]


async def test_the_role_hook_maps_claims(sso_api: Api, mock_op: MockOP) -> None:
    tenant, domain, _ = await tenant_with_sso(sso_api, mock_op)
    sub = "emp-" + uuid.uuid4().hex[:8]
    mock_op.set_user(sub, email=f"carol@{domain}", email_verified=True, groups=["admins"])
    response = await sign_in_mock(sso_api, sub, path=f"/auth/sso/{tenant['slug']}/authorize")
    assert response.status_code == 200, response.text
    me = (await sso_api.client.get("/auth/me", headers=Api.bearer(response.json()))).json()
    assert me["role"] == "ADMIN"


async def test_an_email_outside_the_domains_is_refused(sso_api: Api, mock_op: MockOP) -> None:
    tenant, _, _ = await tenant_with_sso(sso_api, mock_op)
    sub = "ext-" + uuid.uuid4().hex[:8]
    mock_op.set_user(sub, email=f"{sub}@elsewhere.example", email_verified=True)
    response = await sign_in_mock(sso_api, sub, path=f"/auth/sso/{tenant['slug']}/authorize")
    assert_problem(response, 403)


async def test_an_outside_account_with_that_email_is_not_taken_over(sso_api: Api, mock_op: MockOP) -> None:
    tenant, domain, _ = await tenant_with_sso(sso_api, mock_op)
    await sso_api.register(f"dave@{domain}", tenant_name="Dave's own")  # not a member of the SSO tenant
    sub = "emp-" + uuid.uuid4().hex[:8]
    mock_op.set_user(sub, email=f"dave@{domain}", email_verified=True)
    response = await sign_in_mock(sso_api, sub, path=f"/auth/sso/{tenant['slug']}/authorize")
    body = assert_problem(response, 409)
    assert str(body["type"]).endswith("account-exists")


async def test_a_member_with_that_email_is_linked(sso_api: Api, mock_op: MockOP) -> None:
    tenant, domain, _ = await tenant_with_sso(sso_api, mock_op)
    owner = f"owner@{domain}"
    sub = "emp-" + uuid.uuid4().hex[:8]
    mock_op.set_user(sub, email=owner, email_verified=True)
    response = await sign_in_mock(sso_api, sub, path=f"/auth/sso/{tenant['slug']}/authorize")
    assert response.status_code == 200, response.text
    me = (await sso_api.client.get("/auth/me", headers=Api.bearer(response.json()))).json()
    assert me["email"] == owner and me["role"] == "ADMIN"


async def test_unknown_tenant_or_no_sso_is_404(sso_api: Api) -> None:
    assert_problem(await sso_api.client.get("/auth/sso/nope-nope/authorize"), 404)
    assert_problem(await sso_api.client.get("/auth/sso/nope-nope/callback?state=x&code=y"), 404)


async def test_a_platform_state_does_not_finish_an_sso_flow(sso_api: Api, mock_op: MockOP) -> None:
    tenant, domain, _ = await tenant_with_sso(sso_api, mock_op)
    other, _, _ = await tenant_with_sso(sso_api, mock_op)
    sub = "emp-" + uuid.uuid4().hex[:8]
    mock_op.set_user(sub, email=f"erin@{domain}", email_verified=True)
    from tests.federation.conftest import authorize_at_mock, local_part, start

    started = await start(sso_api, f"/auth/sso/{tenant['slug']}/authorize")
    back = await authorize_at_mock(started.headers["location"], sub)
    wrong = local_part(back).replace(f"/auth/sso/{tenant['slug']}/", f"/auth/sso/{other['slug']}/")
    assert_problem(await sso_api.client.get(wrong), 400)


async def test_enforced_sso_signs_in_with_a_second_factor(sso_api: Api, mock_op: MockOP) -> None:
    """``enforce`` stops passwords, not the tenant's own provider, even through the 2FA challenge."""
    import pyotp

    tenant, domain, admin = await tenant_with_sso(sso_api, mock_op)
    body = {
        "issuer": mock_op.issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "domains": [domain],
        "enforce": True,
    }
    assert (await sso_api.client.put("/tenant/sso", json=body, headers=admin)).status_code == 200
    sub = "emp-" + uuid.uuid4().hex[:8]
    mock_op.set_user(sub, email=f"frank@{domain}", email_verified=True)
    path = f"/auth/sso/{tenant['slug']}/authorize"
    tokens = (await sign_in_mock(sso_api, sub, path=path)).json()
    setup = (await sso_api.client.post("/auth/2fa/totp/setup", headers=Api.bearer(tokens))).json()
    confirmed = await sso_api.client.post(
        "/auth/2fa/totp/confirm", json={"code": pyotp.TOTP(setup["secret"]).now()}, headers=Api.bearer(tokens)
    )
    assert confirmed.status_code == 200, confirmed.text
    challenge = (await sign_in_mock(sso_api, sub, path=path)).json()
    assert challenge["mfa_required"] is True
    done = await sso_api.client.post(
        "/auth/2fa/verify",
        json={"mfa_token": challenge["mfa_token"], "recovery_code": confirmed.json()["recovery_codes"][0]},
    )
    assert done.status_code == 200, done.text
    me = (await sso_api.client.get("/auth/me", headers=Api.bearer(done.json()))).json()
    assert me["tenant"]["id"] == tenant["id"]
