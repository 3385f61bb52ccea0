"""Two-factor sign-in over HTTP (API.md "service accounts, two-factor, impersonation"), on both backends."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pyotp
from sqlalchemy import select

from tenantkit.admin import create_user
from tenantkit.db.models import RecoveryCode, UserTOTP
from tests.auth.conftest import Api
from tests.helpers import assert_problem


async def _fresh_step() -> int:
    """The current 30-second step, waiting out the last seconds of one so three steps fit."""
    if time.time() % 30 > 26:
        await asyncio.sleep(30 - time.time() % 30 + 0.2)
    return int(time.time()) // 30


async def _enrol(api: Api, tokens: dict[str, Any]) -> tuple[pyotp.TOTP, int, list[str]]:
    """Set TOTP up and confirm it with the previous step's code; returns the TOTP and that step."""
    setup = await api.client.post("/auth/2fa/totp/setup", headers=api.bearer(tokens))
    assert setup.status_code == 200, setup.text
    body = setup.json()
    assert body["otpauth_uri"].startswith("otpauth://totp/")
    assert "secret=" + body["secret"] in body["otpauth_uri"]
    assert body["qr_svg"].lstrip().startswith("<svg")
    totp = pyotp.TOTP(body["secret"])
    step = await _fresh_step()
    wrong = await api.client.post(
        "/auth/2fa/totp/confirm",
        json={"code": "000000" if totp.at(step * 30) != "000000" else "111111"},
        headers=api.bearer(tokens),
    )
    assert_problem(wrong, 400)
    confirmed = await api.client.post(
        "/auth/2fa/totp/confirm", json={"code": totp.at((step - 1) * 30)}, headers=api.bearer(tokens)
    )
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    return totp, step - 1, codes


async def _challenge(api: Api, email: str) -> dict[str, Any]:
    response = await api.client.post("/auth/login", json={"email": email, "password": api.passwords[email]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mfa_required"] is True and body["methods"] == ["totp", "recovery_code"]
    assert "access_token" not in body and "refresh_token" not in body
    assert "set-cookie" not in response.headers
    return dict(body)


async def test_totp_sign_in_with_replay_protection(api: Api) -> None:
    await api.register("two@example.com")
    totp, confirmed_step, _ = await _enrol(api, await api.login("two@example.com"))

    first = await _challenge(api, "two@example.com")
    replay = await api.client.post(  # the enrolment's confirming code is spent
        "/auth/2fa/verify", json={"mfa_token": first["mfa_token"], "code": totp.at(confirmed_step * 30)}
    )
    assert_problem(replay, 401)
    code = totp.at((confirmed_step + 1) * 30)
    ok = await api.client.post("/auth/2fa/verify", json={"mfa_token": first["mfa_token"], "code": code})
    assert ok.status_code == 200, ok.text
    assert ok.json()["token_type"] == "bearer" and "refresh_token=" in ok.headers["set-cookie"]
    assert (await api.client.get("/auth/me", headers=api.bearer(ok.json()))).status_code == 200

    again = await api.client.post("/auth/2fa/verify", json={"mfa_token": first["mfa_token"], "code": code})
    assert_problem(again, 401)  # the challenge is spent
    second = await _challenge(api, "two@example.com")
    reused = await api.client.post("/auth/2fa/verify", json={"mfa_token": second["mfa_token"], "code": code})
    assert_problem(reused, 401)  # a code is accepted once, within its window too


async def test_recovery_codes_are_single_use_and_stored_hashed(api: Api) -> None:
    registered = await api.register("rec@example.com")
    _, _, codes = await _enrol(api, await api.login("rec@example.com"))
    first = await _challenge(api, "rec@example.com")
    ok = await api.client.post(
        "/auth/2fa/verify", json={"mfa_token": first["mfa_token"], "recovery_code": codes[0].upper()}
    )
    assert ok.status_code == 200, ok.text
    second = await _challenge(api, "rec@example.com")
    reused = await api.client.post(
        "/auth/2fa/verify", json={"mfa_token": second["mfa_token"], "recovery_code": codes[0]}
    )
    assert_problem(reused, 401)
    async with api.kit.database.session() as session:
        user_id = uuid.UUID(registered["user"]["id"])
        digests = (
            await session.scalars(select(RecoveryCode.digest).where(RecoveryCode.user_id == user_id))
        ).all()
        secret = await session.scalar(select(UserTOTP.secret).where(UserTOTP.user_id == user_id))
    assert len(digests) == 10 and all(code.encode() not in d for d in digests for code in codes)
    assert secret is not None and b"otpauth" not in secret and len(secret) > 40  # sealed, not the base32 text


async def test_a_challenge_dies_at_its_fifth_failure_and_failures_lock_the_account(api: Api) -> None:
    await api.register("brute@example.com")
    totp, step, _ = await _enrol(api, await api.login("brute@example.com"))
    challenge = await _challenge(api, "brute@example.com")
    good = totp.at((step + 1) * 30)
    wrong = "123456" if good != "123456" else "654321"
    for _ in range(5):
        response = await api.client.post(
            "/auth/2fa/verify", json={"mfa_token": challenge["mfa_token"], "code": wrong}
        )
        assert response.status_code in (401, 423)
    late = await api.client.post("/auth/2fa/verify", json={"mfa_token": challenge["mfa_token"], "code": good})
    assert late.status_code in (401, 423)  # spent, and the account is locked by now
    locked = await api.client.post(
        "/auth/login", json={"email": "brute@example.com", "password": api.passwords["brute@example.com"]}
    )
    assert_problem(locked, 423)


async def test_turning_totp_off_needs_a_code_or_the_password(api: Api) -> None:
    await api.register("off@example.com")
    tokens = await api.login("off@example.com")
    await _enrol(api, tokens)
    wrong = await api.client.request(
        "DELETE", "/auth/2fa/totp", json={"password": "not-my-password"}, headers=api.bearer(tokens)
    )
    assert_problem(wrong, 401)
    neither = await api.client.request("DELETE", "/auth/2fa/totp", json={}, headers=api.bearer(tokens))
    assert_problem(neither, 422)
    off = await api.client.request(
        "DELETE",
        "/auth/2fa/totp",
        json={"password": api.passwords["off@example.com"]},
        headers=api.bearer(tokens),
    )
    assert off.status_code == 204, off.text
    assert "access_token" in await api.login("off@example.com")  # no challenge any more


async def test_a_tenant_requiring_2fa_refuses_members_without_it(api: Api) -> None:
    registered = await api.register("chief@example.com", tenant_name="Strict")
    tenant = await api.kit.directory.get(uuid.UUID(registered["tenant"]["id"]))
    assert tenant is not None
    await create_user(api.kit, "crew@example.com", "crew-password-1", tenant=tenant, role="USER")
    api.passwords["crew@example.com"] = "crew-password-1"
    crew = await api.login("crew@example.com")  # signed in before the rule: token age does not matter
    admin = await api.login("chief@example.com")

    member = await api.client.patch("/tenant", json={"require_mfa": True}, headers=api.bearer(crew))
    assert_problem(member, 403)  # tenant.manage is the ADMIN's
    turned = await api.client.patch("/tenant", json={"require_mfa": True}, headers=api.bearer(admin))
    assert turned.status_code == 200 and turned.json()["require_mfa"] is True

    refused = await api.client.get("/auth/sessions", headers=api.bearer(crew))
    problem = assert_problem(refused, 403)
    assert str(problem["type"]).endswith("mfa-enrollment-required")
    assert (await api.client.get("/auth/me", headers=api.bearer(crew))).status_code == 200
    await _enrol(api, crew)  # /auth/2fa/* stays open
    assert (await api.client.get("/auth/sessions", headers=api.bearer(crew))).status_code == 200
    assert (await api.client.post("/auth/logout", headers=api.bearer(crew))).status_code == 204
