"""``enforce``: password sign-in into a tenant refused for its SSO domains (403 ``sso-required``), both backends."""

from __future__ import annotations

from typing import Any

from tests.auth.test_two_factor import _enrol
from tests.helpers import Api, assert_problem

SSO = {
    "issuer": "https://idp.acme.example",
    "client_id": "tenantkit-client",
    "client_secret": "client-secret-value",
    "domains": ["acme.example"],
}


async def _setup(api: Api) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """Tenant Acme (admin@acme.example, members carol@acme.example and bob@other.example);
    tenant Beta where carol is also a member. Returns (acme, beta, acme admin headers)."""
    acme = (await api.register("admin@acme.example", tenant_name="Acme"))["tenant"]
    admin = api.bearer(await api.login("admin@acme.example"))
    beta = (await api.register("owner@beta.example", tenant_name="Beta"))["tenant"]
    beta_owner = api.bearer(await api.login("owner@beta.example"))
    for email in ("carol@acme.example", "bob@other.example"):
        invited = await api.client.post(
            "/users/invitations", json={"email": email, "role": "USER"}, headers=admin
        )
        await api.register(email, invite_token=invited.json()["invite_token"])
    invited = await api.client.post(
        "/users/invitations", json={"email": "carol@acme.example", "role": "USER"}, headers=beta_owner
    )
    carol = api.bearer(await api.login("carol@acme.example", **{"X-Tenant-ID": acme["slug"]}))
    accepted = await api.client.post(
        "/auth/invitations/accept", json={"invite_token": invited.json()["invite_token"]}, headers=carol
    )
    assert accepted.status_code == 200, accepted.text
    return acme, beta, admin


async def _login(api: Api, email: str, tenant: str | None = None) -> Any:
    headers = {"X-Tenant-ID": tenant} if tenant else {}
    return await api.client.post(
        "/auth/login", json={"email": email, "password": api.passwords[email.lower()]}, headers=headers
    )


def _sso_required(response: Any) -> dict[str, object]:
    body = assert_problem(response, 403)
    assert str(body["type"]).endswith("/sso-required"), body
    assert "access_token" not in response.text and "mfa_token" not in response.text
    return body


async def test_enforce_refuses_password_sign_in_for_listed_domains_only(api: Api) -> None:
    acme, beta, admin = await _setup(api)
    # configured but not enforced: passwords still work
    assert (
        await api.client.put("/tenant/sso", json={**SSO, "enforce": False}, headers=admin)
    ).status_code == 200
    assert (await _login(api, "carol@acme.example", acme["slug"])).status_code == 200

    enforced = await api.client.put(
        "/tenant/sso",
        json={k: v for k, v in SSO.items() if k != "client_secret"} | {"enforce": True},
        headers=admin,
    )
    assert enforced.status_code == 200, enforced.text

    body = _sso_required(await _login(api, "carol@acme.example", acme["slug"]))
    assert body["tenant"] == acme["slug"]
    _sso_required(await _login(api, "Carol@ACME.example", acme["id"]))
    _sso_required(await _login(api, "admin@acme.example", acme["slug"]))
    # another domain in the same tenant: allowed
    assert (await _login(api, "bob@other.example", acme["slug"])).status_code == 200
    # the same user into another tenant: allowed
    in_beta = await _login(api, "carol@acme.example", beta["slug"])
    assert in_beta.status_code == 200, in_beta.text
    # a wrong password is still a plain 401 (nothing told before the password is right)
    wrong = await api.client.post(
        "/auth/login",
        json={"email": "carol@acme.example", "password": "not the password"},
        headers={"X-Tenant-ID": acme["slug"]},
    )
    assert_problem(wrong, 401)

    # switching from a Beta session into Acme is refused the same way
    beta_session = api.bearer(in_beta.json())
    _sso_required(
        await api.client.post("/auth/switch-tenant", json={"tenant": acme["slug"]}, headers=beta_session)
    )
    bob = api.bearer(await api.login("bob@other.example", **{"X-Tenant-ID": acme["slug"]}))
    switched = await api.client.post("/auth/switch-tenant", json={"tenant": acme["slug"]}, headers=bob)
    assert switched.status_code == 200, switched.text

    # sessions begun before enforcement go on until they end (documented)
    assert (await api.client.get("/tenant/sso", headers=admin)).status_code == 200

    # enforce off: allowed again
    off = await api.client.put(
        "/tenant/sso",
        json={k: v for k, v in SSO.items() if k != "client_secret"} | {"enforce": False},
        headers=admin,
    )
    assert off.status_code == 200
    assert (await _login(api, "carol@acme.example", acme["slug"])).status_code == 200
    # on again, then deleted: allowed again
    await api.client.put(
        "/tenant/sso",
        json={k: v for k, v in SSO.items() if k != "client_secret"} | {"enforce": True},
        headers=admin,
    )
    _sso_required(await _login(api, "carol@acme.example", acme["slug"]))
    assert (await api.client.delete("/tenant/sso", headers=admin)).status_code == 204
    assert (await _login(api, "carol@acme.example", acme["slug"])).status_code == 200
    assert (
        await api.client.post("/auth/switch-tenant", json={"tenant": acme["slug"]}, headers=beta_session)
    ).status_code == 200

    await api.kit.audit_log.flush()
    log = (await api.client.get("/audit", params={"action": "login.sso_required"}, headers=admin)).json()
    assert any(item["action"] == "login.sso_required" for item in log["items"])


async def test_without_a_tenant_header_the_last_used_tenant_is_checked(api: Api) -> None:
    _, beta, admin = await _setup(api)
    await api.client.put("/tenant/sso", json={**SSO, "enforce": True}, headers=admin)
    # the admin's only membership enforces SSO for their domain: 403, never tokens
    _sso_required(await _login(api, "admin@acme.example"))
    # carol last used Beta: a sign-in without a tenant lands there
    assert (await _login(api, "carol@acme.example", beta["slug"])).status_code == 200
    plain = await _login(api, "carol@acme.example")
    assert plain.status_code == 200, plain.text
    who = (await api.client.get("/auth/me", headers=api.bearer(plain.json()))).json()
    assert who["tenant"]["id"] == beta["id"]


async def test_two_factor_users_are_refused_before_and_after_the_challenge(api: Api) -> None:
    acme, _, admin = await _setup(api)
    carol_tokens = await api.login("carol@acme.example", **{"X-Tenant-ID": acme["slug"]})
    totp, step, _ = await _enrol(api, carol_tokens)
    # a challenge started before enforcement cannot be completed after it
    challenge = await _login(api, "carol@acme.example", acme["slug"])
    assert challenge.json()["mfa_required"] is True
    await api.client.put("/tenant/sso", json={**SSO, "enforce": True}, headers=admin)
    code = totp.at((step + 1) * 30)
    _sso_required(
        await api.client.post(
            "/auth/2fa/verify", json={"mfa_token": challenge.json()["mfa_token"], "code": code}
        )
    )
    # and none starts while it is enforced
    _sso_required(await _login(api, "carol@acme.example", acme["slug"]))
    # not enforced: the challenge and its answer work
    body = {k: v for k, v in SSO.items() if k != "client_secret"} | {"enforce": False}
    assert (await api.client.put("/tenant/sso", json=body, headers=admin)).status_code == 200
    challenge = await _login(api, "carol@acme.example", acme["slug"])
    assert challenge.json()["mfa_required"] is True
    done = await api.client.post(
        "/auth/2fa/verify",
        json={"mfa_token": challenge.json()["mfa_token"], "code": totp.at((step + 2) * 30)},
    )
    assert done.status_code == 200, done.text
    who = (await api.client.get("/auth/me", headers=api.bearer(done.json()))).json()
    assert who["tenant"]["id"] == acme["id"]
