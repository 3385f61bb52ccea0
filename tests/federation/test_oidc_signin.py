"""OpenID Connect sign-in through a real provider (oidc-provider-mock on a loopback port)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from tenantkit.db.models import Membership, User, UserIdentity
from tests.federation.conftest import (
    ALLOWED_APP,
    MockOP,
    authorize_at_mock,
    local_part,
    query_of,
    sign_in_mock,
    start,
)
from tests.helpers import Api, assert_problem


def fresh_sub() -> str:
    return "sub-" + uuid.uuid4().hex[:12]


async def count(api: Api, model: type) -> int:
    async with api.kit.database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_providers_are_listed_publicly(oidc_api: Api) -> None:
    response = await oidc_api.client.get("/auth/oidc/providers")
    assert response.status_code == 200
    names = [item["name"] for item in response.json()["items"]]
    assert names == ["mock", "mini"]
    assert response.json()["items"][0]["authorize_url"] == "https://testserver/auth/oidc/mock/authorize"


async def test_authorize_redirects_with_state_nonce_and_pkce(oidc_api: Api, mock_op: MockOP) -> None:
    response = await start(oidc_api, "/auth/oidc/mock/authorize")
    location = response.headers["location"]
    assert location.startswith(mock_op.issuer + "/oauth2/authorize?")
    query = query_of(location)
    assert query["response_type"] == "code" and query["client_id"] == "tenantkit-test"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32
    assert query["redirect_uri"] == "https://testserver/auth/oidc/mock/callback"
    assert "openid" in query["scope"].split()
    cookie = response.headers["set-cookie"]
    assert "tk_oidc=" in cookie and "HttpOnly" in cookie and "Path=/auth" in cookie
    assert "SameSite=lax" in cookie and "Secure" in cookie


async def test_new_identity_creates_a_user_and_their_tenant(oidc_api: Api, mock_op: MockOP) -> None:
    sub = fresh_sub()
    mock_op.set_user(sub, email=f"{sub}@example.com", email_verified=True, name="Ada Lovelace")
    response = await sign_in_mock(oidc_api, sub)
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"] == "bearer" and tokens["refresh_token"]
    assert "refresh_token=" in response.headers["set-cookie"]
    me = await oidc_api.client.get("/auth/me", headers=Api.bearer(tokens))
    assert me.status_code == 200
    body = me.json()
    assert body["email"] == f"{sub}@example.com" and body["email_verified"] is True
    assert body["role"] == "ADMIN" and body["tenant"]["name"] == "Ada Lovelace"
    identities = await oidc_api.client.get("/auth/identities", headers=Api.bearer(tokens))
    [identity] = identities.json()["items"]
    assert identity["provider"] == "oidc:mock" and identity["issuer"] == mock_op.issuer
    assert identity["email"] == f"{sub}@example.com"
    # A password never signs in to this account.
    login = await oidc_api.client.post("/auth/login", json={"email": f"{sub}@example.com", "password": "!"})
    assert_problem(login, 401)

    # The second sign-in finds the same user, creates nothing.
    users = await count(oidc_api, User)
    again = await sign_in_mock(oidc_api, sub)
    assert again.status_code == 200, again.text
    me2 = await oidc_api.client.get("/auth/me", headers=Api.bearer(again.json()))
    assert me2.json()["id"] == body["id"]
    assert await count(oidc_api, User) == users
    assert await count(oidc_api, UserIdentity) == 1


async def test_unverified_provider_email_sets_no_verification(oidc_api: Api, mock_op: MockOP) -> None:
    sub = fresh_sub()
    mock_op.set_user(sub, email=f"{sub}@example.com", email_verified=False)
    response = await sign_in_mock(oidc_api, sub)
    assert response.status_code == 200, response.text
    me = await oidc_api.client.get("/auth/me", headers=Api.bearer(response.json()))
    assert me.json()["email_verified"] is False
    # The tenant is named after the email's local part when the provider gives no name.
    assert me.json()["tenant"]["name"] == sub


async def test_redirect_to_an_allowed_url_gets_the_cookie_not_tokens(oidc_api: Api, mock_op: MockOP) -> None:
    sub = fresh_sub()
    mock_op.set_user(sub, email=f"{sub}@example.com", email_verified=True)
    target = ALLOWED_APP + "/welcome?x=1"
    started = await start(oidc_api, "/auth/oidc/mock/authorize", params={"redirect_to": target})
    back = await authorize_at_mock(started.headers["location"], sub)
    response = await oidc_api.client.get(local_part(back))
    assert response.status_code == 302
    assert response.headers["location"] == target
    assert "refresh_token=" in response.headers["set-cookie"]
    assert "HttpOnly" in response.headers["set-cookie"]
    # The refresh cookie works.
    refreshed = await oidc_api.client.post("/auth/refresh", headers={"Origin": "https://testserver"})
    assert refreshed.status_code == 200, refreshed.text


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example.com/",
        "//evil.example.com/x",
        "/\\evil.example.com",
        "https://app.example.com.evil.example.com/",
        "https://user@app.example.com/",
        "javascript:alert(1)",
        "http://app.example.com/",  # another scheme is another origin
    ],
)
async def test_open_redirects_are_refused(oidc_api: Api, target: str) -> None:
    response = await oidc_api.client.get("/auth/oidc/mock/authorize", params={"redirect_to": target})
    assert_problem(response, 400)


async def test_relative_redirect_is_allowed(oidc_api: Api) -> None:
    response = await oidc_api.client.get("/auth/oidc/mock/authorize", params={"redirect_to": "/dashboard"})
    assert response.status_code == 302


async def test_unknown_provider_is_404(oidc_api: Api) -> None:
    assert_problem(await oidc_api.client.get("/auth/oidc/nope/authorize"), 404)
    assert_problem(await oidc_api.client.get("/auth/oidc/nope/callback?state=x&code=y"), 404)


async def test_membership_of_new_account(oidc_api: Api, mock_op: MockOP) -> None:
    sub = fresh_sub()
    mock_op.set_user(sub, email=f"{sub}@example.com", email_verified=True)
    before = await count(oidc_api, Membership)
    assert (await sign_in_mock(oidc_api, sub)).status_code == 200
    assert await count(oidc_api, Membership) == before + 1
