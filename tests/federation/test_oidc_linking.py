"""Linking identities to existing accounts, unlinking, email verification, hooks and 2FA."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pyotp
import pytest
from sqlalchemy import func, select

from tenantkit import Settings, TenantKit, hookimpl
from tenantkit.db.models import User, UserIdentity
from tenantkit.mail import MemoryMailer
from tests.federation.conftest import (
    ALLOWED_APP,
    MiniOP,
    MockOP,
    authorize_at_mock,
    local_part,
    provider_settings,
    sign_in_mock,
)
from tests.helpers import Api, assert_problem, serve


def fresh(mock_op: MockOP, email: str, *, verified: bool = True, **claims: Any) -> str:
    sub = "sub-" + uuid.uuid4().hex[:12]
    mock_op.set_user(sub, email=email, email_verified=verified, **claims)
    return sub


def email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


async def verify_email(api: Api, tokens: dict[str, Any]) -> None:
    sent = await api.client.post("/auth/email/verify", headers=Api.bearer(tokens))
    assert sent.status_code == 202, sent.text
    mail = api.mailer.outbox[-1]
    assert mail.kind == "email_verification"
    token = re.search(r"tkv_[A-Za-z0-9_-]+", mail.body)
    assert token is not None
    confirmed = await api.client.post("/auth/email/verify/confirm", json={"token": token.group(0)})
    assert confirmed.status_code == 204, confirmed.text
    # Single use.
    again = await api.client.post("/auth/email/verify/confirm", json={"token": token.group(0)})
    assert_problem(again, 400)


async def identity_count(api: Api) -> int:
    async with api.kit.database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(UserIdentity)) or 0)


async def test_email_verification_flow(oidc_api: Api) -> None:
    address = email()
    await oidc_api.register(address)
    tokens = await oidc_api.login(address)
    me = await oidc_api.client.get("/auth/me", headers=Api.bearer(tokens))
    assert me.json()["email_verified"] is False
    await verify_email(oidc_api, tokens)
    me = await oidc_api.client.get("/auth/me", headers=Api.bearer(tokens))
    assert me.json()["email_verified"] is True
    assert_problem(await oidc_api.client.post("/auth/email/verify", headers=Api.bearer(tokens)), 409)
    assert_problem(await oidc_api.client.post("/auth/email/verify/confirm", json={"token": "tkv_nope"}), 400)
    assert_problem(await oidc_api.client.post("/auth/email/verify"), 401)


async def test_password_reset_verifies_the_email(oidc_api: Api) -> None:
    address = email()
    await oidc_api.register(address)
    await oidc_api.client.post("/auth/password-reset", json={"email": address})
    await oidc_api.kit.background.drain()
    token = re.search(r"tkp_[A-Za-z0-9_-]+", oidc_api.mailer.outbox[-1].body)
    assert token is not None
    done = await oidc_api.client.post(
        "/auth/password-reset/confirm", json={"token": token.group(0), "new_password": "another long one"}
    )
    assert done.status_code == 204
    tokens = await oidc_api.login(address, "another long one")
    me = await oidc_api.client.get("/auth/me", headers=Api.bearer(tokens))
    assert me.json()["email_verified"] is True


async def test_email_match_links_only_when_both_sides_are_verified(oidc_api: Api, mock_op: MockOP) -> None:
    address = email()
    await oidc_api.register(address)

    # The provider asserts the email, the local account has not verified it: 409, nothing created.
    sub = fresh(mock_op, address, verified=True)
    before = await identity_count(oidc_api)
    response = await sign_in_mock(oidc_api, sub)
    body = assert_problem(response, 409)
    assert str(body["type"]).endswith("account-exists")
    assert await identity_count(oidc_api) == before

    # Verified locally, but the provider does not assert it: still 409.
    tokens = await oidc_api.login(address)
    await verify_email(oidc_api, tokens)
    unverified = fresh(mock_op, address, verified=False)
    assert_problem(await sign_in_mock(oidc_api, unverified), 409)

    # Both verified: linked, and the sign-in lands in the existing account.
    response = await sign_in_mock(oidc_api, sub)
    assert response.status_code == 200, response.text
    me = (await oidc_api.client.get("/auth/me", headers=Api.bearer(response.json()))).json()
    assert me["email"] == address
    assert await identity_count(oidc_api) == before + 1


async def test_link_while_signed_in_then_list_and_unlink(oidc_api: Api, mock_op: MockOP) -> None:
    address = email()
    await oidc_api.register(address)
    tokens = await oidc_api.login(address)
    sub = fresh(mock_op, "someone-else-" + address, verified=False)  # any email: the user proves both
    started = await oidc_api.client.post(
        "/auth/oidc/mock/link", params={"redirect_to": "/settings"}, headers=Api.bearer(tokens)
    )
    assert started.status_code == 302, started.text
    back = await authorize_at_mock(started.headers["location"], sub)
    linked = await oidc_api.client.get(local_part(back))
    assert linked.status_code == 302 and linked.headers["location"] == "/settings"
    items = (await oidc_api.client.get("/auth/identities", headers=Api.bearer(tokens))).json()["items"]
    assert len(items) == 1 and items[0]["provider"] == "oidc:mock"
    # The identity now signs in to this account.
    signed = await sign_in_mock(oidc_api, sub)
    assert signed.status_code == 200
    me = (await oidc_api.client.get("/auth/me", headers=Api.bearer(signed.json()))).json()
    assert me["email"] == address
    # The account has a password: unlinking the only identity is fine.
    gone = await oidc_api.client.delete(f"/auth/identities/{items[0]['id']}", headers=Api.bearer(tokens))
    assert gone.status_code == 204
    assert (await oidc_api.client.get("/auth/identities", headers=Api.bearer(tokens))).json()["items"] == []
    assert_problem(
        await oidc_api.client.delete(f"/auth/identities/{items[0]['id']}", headers=Api.bearer(tokens)), 404
    )


async def test_an_identity_of_another_account_cannot_be_linked(oidc_api: Api, mock_op: MockOP) -> None:
    sub = fresh(mock_op, email())
    assert (await sign_in_mock(oidc_api, sub)).status_code == 200  # it belongs to a new account
    address = email()
    await oidc_api.register(address)
    tokens = await oidc_api.login(address)
    started = await oidc_api.client.post("/auth/oidc/mock/link", headers=Api.bearer(tokens))
    back = await authorize_at_mock(started.headers["location"], sub)
    assert_problem(await oidc_api.client.get(local_part(back)), 409)


async def test_the_last_way_in_cannot_be_unlinked(oidc_api: Api, mock_op: MockOP) -> None:
    sub = fresh(mock_op, email())
    signed = await sign_in_mock(oidc_api, sub)
    tokens = signed.json()
    [identity] = (await oidc_api.client.get("/auth/identities", headers=Api.bearer(tokens))).json()["items"]
    assert_problem(
        await oidc_api.client.delete(f"/auth/identities/{identity['id']}", headers=Api.bearer(tokens)), 409
    )
    # Another identity makes it removable.
    other = fresh(mock_op, email())
    started = await oidc_api.client.post("/auth/oidc/mock/link", headers=Api.bearer(tokens))
    back = await authorize_at_mock(started.headers["location"], other)
    assert (await oidc_api.client.get(local_part(back))).status_code == 200
    gone = await oidc_api.client.delete(f"/auth/identities/{identity['id']}", headers=Api.bearer(tokens))
    assert gone.status_code == 204
    # Someone else's identity is invisible.
    stranger = await sign_in_mock(oidc_api, fresh(mock_op, email()))
    [theirs] = (await oidc_api.client.get("/auth/identities", headers=Api.bearer(stranger.json()))).json()[
        "items"
    ]
    assert_problem(
        await oidc_api.client.delete(f"/auth/identities/{theirs['id']}", headers=Api.bearer(tokens)), 404
    )


async def test_link_needs_a_session(oidc_api: Api) -> None:
    assert_problem(await oidc_api.client.post("/auth/oidc/mock/link"), 401)
    assert_problem(await oidc_api.client.get("/auth/identities"), 401)


class Refuser:
    @hookimpl
    def tenantkit_authorize_federated_login(
        self, provider: str, claims: dict[str, Any], user_id: str | None
    ) -> Any:
        return "blocked domain" if str(claims.get("email", "")).endswith("@blocked.example") else None


@pytest.fixture
async def hooked_api(
    kit_factory: Callable[..., TenantKit],
    settings_factory: Callable[..., Settings],
    mock_op: MockOP,
    mini_op: MiniOP,
) -> AsyncIterator[Api]:
    settings = settings_factory(
        oidc_providers=provider_settings(mock_op, mini_op), oidc_redirect_allowlist=[ALLOWED_APP]
    )
    kit = kit_factory(settings, mailer=MemoryMailer(), plugins=[Refuser()])
    async with serve(kit.build_app(), base_url="https://testserver") as client:
        yield Api(client, kit, MemoryMailer())


async def test_a_plugin_refuses_a_sign_in(hooked_api: Api, mock_op: MockOP) -> None:
    async with hooked_api.kit.database.session() as session:
        before = await session.scalar(select(func.count()).select_from(User))
    sub = fresh(mock_op, f"{uuid.uuid4().hex[:8]}@blocked.example")
    body = assert_problem(await sign_in_mock(hooked_api, sub), 403)
    assert "blocked domain" in str(body["detail"])
    async with hooked_api.kit.database.session() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == before
    ok = fresh(mock_op, email())
    assert (await sign_in_mock(hooked_api, ok)).status_code == 200


async def test_two_factor_applies_to_federated_sign_in(oidc_api: Api, mock_op: MockOP) -> None:
    sub = fresh(mock_op, email())
    tokens = (await sign_in_mock(oidc_api, sub)).json()
    setup = (await oidc_api.client.post("/auth/2fa/totp/setup", headers=Api.bearer(tokens))).json()
    totp = pyotp.TOTP(setup["secret"])
    confirmed = await oidc_api.client.post(
        "/auth/2fa/totp/confirm", json={"code": totp.now()}, headers=Api.bearer(tokens)
    )
    assert confirmed.status_code == 200, confirmed.text
    challenged = await sign_in_mock(oidc_api, sub)
    assert challenged.status_code == 200
    body = challenged.json()
    assert body["mfa_required"] is True and "access_token" not in body
    recovery = confirmed.json()["recovery_codes"][0]
    done = await oidc_api.client.post(
        "/auth/2fa/verify", json={"mfa_token": body["mfa_token"], "recovery_code": recovery}
    )
    assert done.status_code == 200, done.text
    assert done.json()["access_token"]


async def test_sign_in_link_and_unlink_are_audited(oidc_api: Api, mock_op: MockOP) -> None:
    sub = fresh(mock_op, email())
    tokens = (await sign_in_mock(oidc_api, sub)).json()
    other = fresh(mock_op, email())
    started = await oidc_api.client.post("/auth/oidc/mock/link", headers=Api.bearer(tokens))
    back = await authorize_at_mock(started.headers["location"], other)
    linked = (await oidc_api.client.get(local_part(back))).json()
    assert (
        await oidc_api.client.delete(f"/auth/identities/{linked['id']}", headers=Api.bearer(tokens))
    ).status_code == 204
    await oidc_api.kit.audit_log.flush()
    rows = (await oidc_api.client.get("/audit", headers=Api.bearer(tokens))).json()["items"]
    actions = [row["action"] for row in rows]
    for action in ("federated.login", "user.registered", "identity.linked", "identity.unlinked"):
        assert action in actions, actions
    login = next(row for row in rows if row["action"] == "federated.login")
    assert login["data"]["provider"] == "oidc:mock" and login["data"]["created"] is True


async def test_a_link_tells_the_owner_and_dies_with_its_session(oidc_api: Api, mock_op: MockOP) -> None:
    address = email()
    await oidc_api.register(address)
    tokens = await oidc_api.login(address)
    started = await oidc_api.client.post("/auth/oidc/mock/link", headers=Api.bearer(tokens))
    back = await authorize_at_mock(started.headers["location"], fresh(mock_op, email()))
    assert (await oidc_api.client.get(local_part(back))).status_code == 200
    notice = oidc_api.mailer.outbox[-1]
    assert notice.to == address and notice.kind == "identity_linked" and "mock" in notice.body

    # A link started by a session that is signed out before the provider answers fails.
    tokens = await oidc_api.login(address)
    started = await oidc_api.client.post("/auth/oidc/mock/link", headers=Api.bearer(tokens))
    back = await authorize_at_mock(started.headers["location"], fresh(mock_op, email()))
    assert (await oidc_api.client.post("/auth/logout", headers=Api.bearer(tokens))).status_code == 204
    before = await identity_count(oidc_api)
    assert_problem(await oidc_api.client.get(local_part(back)), 400)
    assert await identity_count(oidc_api) == before
