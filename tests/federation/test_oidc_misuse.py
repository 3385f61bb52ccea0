"""What an attacker (or a broken provider) tries: each is a 400 and creates nothing."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import func, select

from tenantkit.db.models import User, UserIdentity
from tests.federation.conftest import (
    MiniOP,
    MockOP,
    authorize_at_mock,
    local_part,
    query_of,
    sign_in_mini,
    sign_in_mock,
    start,
)
from tests.helpers import Api, assert_problem


async def counts(api: Api) -> tuple[int, int]:
    async with api.kit.database.session() as session:
        users = await session.scalar(select(func.count()).select_from(User))
        identities = await session.scalar(select(func.count()).select_from(UserIdentity))
    return int(users or 0), int(identities or 0)


def fresh(mock_op: MockOP) -> str:
    sub = "sub-" + uuid.uuid4().hex[:12]
    mock_op.set_user(sub, email=f"{sub}@example.com", email_verified=True)
    return sub


async def test_replayed_callback_is_refused(oidc_api: Api, mock_op: MockOP) -> None:
    sub = fresh(mock_op)
    started = await start(oidc_api, "/auth/oidc/mock/authorize")
    back = await authorize_at_mock(started.headers["location"], sub)
    first = await oidc_api.client.get(local_part(back))
    assert first.status_code == 200, first.text
    before = await counts(oidc_api)
    replay = await oidc_api.client.get(local_part(back))
    body = assert_problem(replay, 400)
    assert str(body["type"]).endswith("/oidc-failed") or str(body["type"]).endswith(":oidc-failed")
    assert await counts(oidc_api) == before


async def test_tampered_state_is_refused(oidc_api: Api, mock_op: MockOP) -> None:
    sub = fresh(mock_op)
    before = await counts(oidc_api)
    started = await start(oidc_api, "/auth/oidc/mock/authorize")
    back = await authorize_at_mock(started.headers["location"], sub)
    state = query_of(back)["state"]
    tampered = local_part(back).replace(state, state[:-2] + ("AA" if state[-2:] != "AA" else "BB"))
    assert_problem(await oidc_api.client.get(tampered), 400)
    assert await counts(oidc_api) == before


async def test_missing_or_foreign_binding_cookie_is_refused(oidc_api: Api, mock_op: MockOP) -> None:
    sub = fresh(mock_op)
    before = await counts(oidc_api)
    started = await start(oidc_api, "/auth/oidc/mock/authorize")
    back = await authorize_at_mock(started.headers["location"], sub)
    oidc_api.client.cookies.clear()  # another browser (a login CSRF victim) has no binding cookie
    assert_problem(await oidc_api.client.get(local_part(back)), 400)
    # ...or another binding value of its own.
    started = await start(oidc_api, "/auth/oidc/mock/authorize")
    back = await authorize_at_mock(started.headers["location"], sub)
    oidc_api.client.cookies.clear()
    oidc_api.client.cookies.set("tk_oidc", "x" * 43, domain="testserver", path="/auth")
    assert_problem(await oidc_api.client.get(local_part(back)), 400)
    assert await counts(oidc_api) == before


async def test_provider_error_is_named(oidc_api: Api, mock_op: MockOP) -> None:
    started = await start(oidc_api, "/auth/oidc/mock/authorize")
    async with httpx.AsyncClient() as browser:
        denied = await browser.post(started.headers["location"], data={"action": "deny"})
    assert denied.status_code == 302
    response = await oidc_api.client.get(local_part(denied.headers["location"]))
    body = assert_problem(response, 400)
    assert "access_denied" in str(body["detail"])
    # With the state given, the error spends it: the flow cannot be finished afterwards.
    state = query_of(started.headers["location"])["state"]
    errored = await oidc_api.client.get(f"/auth/oidc/mock/callback?state={state}&error=access_denied")
    assert_problem(errored, 400)
    again = await oidc_api.client.get(f"/auth/oidc/mock/callback?state={state}&code=x")
    assert "already used" in str(assert_problem(again, 400)["detail"])


async def test_callback_without_code_or_state(oidc_api: Api) -> None:
    assert_problem(await oidc_api.client.get("/auth/oidc/mock/callback"), 400)
    assert_problem(await oidc_api.client.get("/auth/oidc/mock/callback?code=abc"), 400)


async def test_state_of_another_provider_is_refused(oidc_api: Api, mock_op: MockOP) -> None:
    sub = fresh(mock_op)
    started = await start(oidc_api, "/auth/oidc/mock/authorize")
    back = await authorize_at_mock(started.headers["location"], sub)
    wrong = local_part(back).replace("/auth/oidc/mock/", "/auth/oidc/mini/")
    assert_problem(await oidc_api.client.get(wrong), 400)


async def test_mini_provider_happy_path_checks_pkce(oidc_api: Api, mini_op: MiniOP) -> None:
    mini_op.claims = {"sub": "mini-" + uuid.uuid4().hex[:8], "email": f"{uuid.uuid4().hex[:8]}@example.org"}
    response = await sign_in_mini(oidc_api)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "mode", ["wrong_nonce", "wrong_aud", "wrong_iss", "expired", "forged_kid", "alg_none", "multi_aud_no_azp"]
)
async def test_bad_id_tokens_are_refused(oidc_api: Api, mini_op: MiniOP, mode: str) -> None:
    mini_op.mode = mode
    before = await counts(oidc_api)
    response = await sign_in_mini(oidc_api)
    body = assert_problem(response, 400)
    expected = {
        "wrong_nonce": "(nonce)",
        "wrong_aud": "(aud)",
        "wrong_iss": "(iss)",
        "expired": "(exp)",
        "forged_kid": "signature",
        "alg_none": "ID token",
        "multi_aud_no_azp": "(azp)",
    }[mode]
    assert expected in str(body["detail"]), body
    assert await counts(oidc_api) == before


async def test_a_rotated_provider_key_is_followed(oidc_api: Api, mock_op: MockOP) -> None:
    sub = fresh(mock_op)
    assert (await sign_in_mock(oidc_api, sub)).status_code == 200  # JWKS cached
    old = mock_op.kids()
    mock_op.rotate_key()
    assert mock_op.kids() != old
    response = await sign_in_mock(oidc_api, sub)
    assert response.status_code == 200, response.text


async def test_a_code_exchanged_elsewhere_fails(oidc_api: Api, mock_op: MockOP) -> None:
    """The provider refuses a code it already redeemed: 400 naming the provider's error."""
    sub = fresh(mock_op)
    started = await start(oidc_api, "/auth/oidc/mock/authorize")
    back = await authorize_at_mock(started.headers["location"], sub)
    code = query_of(back)["code"]
    async with httpx.AsyncClient() as attacker:  # the code is spent at the provider first
        await attacker.post(
            f"{mock_op.issuer}/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": "https://testserver/auth/oidc/mock/callback",
            },
            auth=("tenantkit-test", "x"),
        )
    before = await counts(oidc_api)
    body = assert_problem(await oidc_api.client.get(local_part(back)), 400)
    assert "invalid_grant" in str(body["detail"])
    assert await counts(oidc_api) == before


async def test_a_rotated_kid_is_fetched_once_and_forged_kids_do_not_hammer(
    oidc_api: Api, mini_op: MiniOP
) -> None:
    from joserfc.jwk import RSAKey

    mini_op.claims = {"sub": "rot-" + uuid.uuid4().hex[:8], "email": f"{uuid.uuid4().hex[:8]}@example.org"}
    assert (await sign_in_mini(oidc_api)).status_code == 200
    mini_op.key = RSAKey.generate_key(2048, parameters={"kid": "k-" + uuid.uuid4().hex[:6]})
    fetched = mini_op.jwks_requests
    assert (await sign_in_mini(oidc_api)).status_code == 200  # unknown kid: one refetch
    assert mini_op.jwks_requests == fetched + 1
    mini_op.mode = "forged_kid"
    for _ in range(3):
        assert_problem(await sign_in_mini(oidc_api), 400)
    assert mini_op.jwks_requests == fetched + 1  # refetches are rate limited per issuer


async def test_userinfo_supplies_a_missing_email(oidc_api: Api, mini_op: MiniOP) -> None:
    mini_op.mode = "no_email"
    address = f"{uuid.uuid4().hex[:8]}@example.org"
    mini_op.userinfo_email = address
    mini_op.claims = {"sub": "ui-" + uuid.uuid4().hex[:8]}
    try:
        response = await sign_in_mini(oidc_api)
    finally:
        mini_op.userinfo_email = "mini@example.org"
    assert response.status_code == 200, response.text
    me = await oidc_api.client.get("/auth/me", headers=Api.bearer(response.json()))
    assert me.json()["email"] == address and me.json()["email_verified"] is True


async def test_concurrent_callbacks_of_one_flow_have_one_winner(oidc_api: Api, mock_op: MockOP) -> None:
    import asyncio

    sub = fresh(mock_op)
    started = await start(oidc_api, "/auth/oidc/mock/authorize")
    back = await authorize_at_mock(started.headers["location"], sub)
    answers = await asyncio.gather(*(oidc_api.client.get(local_part(back)) for _ in range(5)))
    assert sorted(a.status_code for a in answers) == [200, 400, 400, 400, 400]


async def test_a_tenant_chosen_issuer_goes_through_the_ssrf_guard(mock_op: MockOP) -> None:
    from tenantkit.federation.oidc import OidcClient, OidcError, OidcProvider

    provider = OidcProvider(
        key="sso:x", name="sso:x", issuer=mock_op.issuer, client_id="c", client_secret="s", guarded=True
    )
    with pytest.raises(OidcError):
        await OidcClient().metadata(provider)  # loopback, not allow-listed
    document = await OidcClient(allow_hosts=["127.0.0.1"]).metadata(provider)
    assert document["issuer"] == mock_op.issuer
    for issuer in ("http://169.254.169.254", "http://10.0.0.1", "http://0x7f000001:80"):
        bad = OidcProvider(
            key="sso:x", name="sso:x", issuer=issuer, client_id="c", client_secret="s", guarded=True
        )
        with pytest.raises(OidcError):
            await OidcClient(allow_hosts=["127.0.0.1"]).metadata(bad)
