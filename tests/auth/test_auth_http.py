"""The Auth table of API.md over HTTP, on SQLite + memory and PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.auth.conftest import Api
from tests.helpers import assert_problem


async def test_register_creates_tenant_and_admin(api: Api) -> None:
    body = await api.register("Owner@Example.com", tenant_name="Acme Shoes")
    assert body["user"]["email"] == "owner@example.com"
    assert body["tenant"]["slug"] == "acme-shoes"
    assert body["tenant"]["name"] == "Acme Shoes"
    assert body["role"] == "ADMIN"
    uuid.UUID(body["user"]["id"])


async def test_register_rejects_taken_email_case_insensitively(api: Api) -> None:
    await api.register("dup@example.com")
    response = await api.client.post(
        "/auth/register", json={"email": "DUP@example.com", "password": "password123", "tenant_name": "X"}
    )
    assert_problem(response, 409)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"email": "not-an-email", "password": "password123", "tenant_name": "x"}, {"email"}),
        ({"email": "a@example.com", "password": "short", "tenant_name": "x"}, {"password"}),
        ({"email": "a@example.com", "password": "p" * 1025, "tenant_name": "x"}, {"password"}),
        ({"email": 5, "password": ["x"], "tenant_name": "x"}, {"email", "password"}),
        (
            {"email": "a@example.com", "password": "password123", "tenant_name": "x", "tenant_id": "t"},
            {"tenant_id"},
        ),
        ({}, {"email", "password"}),
    ],
)
async def test_register_validation_lists_every_field(
    api: Api, body: dict[str, object], fields: set[str]
) -> None:
    problem = assert_problem(await api.client.post("/auth/register", json=body), 422)
    errors = problem["errors"]
    assert isinstance(errors, list)
    assert {e["loc"][1] for e in errors} == fields


async def test_malformed_json_and_wrong_content_type(api: Api) -> None:
    bad = await api.client.post(
        "/auth/login", content=b'{"email": ', headers={"content-type": "application/json"}
    )
    assert_problem(bad, 400)
    form = await api.client.post("/auth/login", data={"email": "a@b.c", "password": "x"})
    assert_problem(form, 415)


async def test_long_password_is_not_truncated(api: Api) -> None:
    password = "€" * 30  # 90 bytes
    await api.register("long@example.com", password=password)
    await api.login("long@example.com", password)
    truncated = password.encode()[:72].decode(errors="ignore")
    response = await api.client.post("/auth/login", json={"email": "long@example.com", "password": truncated})
    assert_problem(response, 401)


async def test_login_returns_pair_and_cookie(api: Api) -> None:
    await api.register("a@example.com")
    response = await api.client.post(
        "/auth/login", json={"email": "A@EXAMPLE.COM", "password": api.passwords["a@example.com"]}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == api.kit.settings.access_token_ttl
    assert body["refresh_token"].startswith("tkr_")
    cookie = response.headers["set-cookie"]
    assert f"refresh_token={body['refresh_token']}" in cookie
    for part in ("HttpOnly", "SameSite=strict", "Path=/auth", "Secure"):
        assert part.lower() in cookie.lower()
    assert response.headers["cache-control"] == "no-store"


async def test_unknown_email_and_wrong_password_look_the_same(api: Api) -> None:
    await api.register("real@example.com")
    wrong = await api.client.post("/auth/login", json={"email": "real@example.com", "password": "nope-nope"})
    unknown = await api.client.post(
        "/auth/login", json={"email": "ghost@example.com", "password": "nope-nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"] == "Bearer"


async def test_login_with_tenant_header_chooses_membership(api: Api) -> None:
    owner = await api.register("owner@example.com", tenant_name="First")
    other = await api.register("other@example.com", tenant_name="Second")
    tokens = await api.login("owner@example.com", **{"X-Tenant-ID": owner["tenant"]["slug"]})
    me = await api.client.get("/auth/me", headers=api.bearer(tokens))
    assert me.json()["tenant"]["id"] == owner["tenant"]["id"]
    not_member = await api.client.post(
        "/auth/login",
        json={"email": "owner@example.com", "password": api.passwords["owner@example.com"]},
        headers={"X-Tenant-ID": other["tenant"]["id"]},
    )
    assert_problem(not_member, 403)
    unknown = await api.client.post(
        "/auth/login",
        json={"email": "owner@example.com", "password": api.passwords["owner@example.com"]},
        headers={"X-Tenant-ID": "no-such-tenant"},
    )
    assert_problem(unknown, 404)


async def test_lockout_after_threshold_even_with_right_password(api: Api) -> None:
    await api.register("lock@example.com")
    for _ in range(5):
        r = await api.client.post("/auth/login", json={"email": "lock@example.com", "password": "wrong-pass"})
        assert r.status_code == 401
    locked = await api.client.post(
        "/auth/login", json={"email": "lock@example.com", "password": api.passwords["lock@example.com"]}
    )
    assert_problem(locked, 423)
    assert 0 < int(locked.headers["retry-after"]) <= 900


async def test_unknown_emails_lock_the_same_way(api: Api) -> None:
    statuses = [
        (
            await api.client.post("/auth/login", json={"email": "ghost@example.com", "password": "x"})
        ).status_code
        for _ in range(6)
    ]
    assert statuses == [401] * 5 + [423]


async def test_success_resets_the_failure_count(api: Api) -> None:
    await api.register("reset@example.com")
    for _ in range(4):
        await api.client.post("/auth/login", json={"email": "reset@example.com", "password": "wrong-pass"})
    await api.login("reset@example.com")
    for _ in range(4):
        r = await api.client.post(
            "/auth/login", json={"email": "reset@example.com", "password": "wrong-pass"}
        )
        assert r.status_code == 401


async def test_parallel_failures_lock_exactly_at_the_threshold(api: Api) -> None:
    await api.register("par@example.com")
    responses = await asyncio.gather(
        *(
            api.client.post("/auth/login", json={"email": "par@example.com", "password": "bad-pass"})
            for _ in range(50)
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes.count(401) == 5
    assert codes.count(423) == 45


async def test_rotating_forwarded_for_does_not_reset_lockout(api: Api) -> None:
    await api.register("xff@example.com")
    for i in range(5):
        await api.client.post(
            "/auth/login",
            json={"email": "xff@example.com", "password": "bad-pass"},
            headers={"X-Forwarded-For": f"198.51.100.{i}"},
        )
    locked = await api.client.post(
        "/auth/login",
        json={"email": "xff@example.com", "password": api.passwords["xff@example.com"]},
        headers={"X-Forwarded-For": "198.51.100.99"},
    )
    assert locked.status_code == 423


async def test_refresh_rotates_and_spends_the_old_token(api: Api) -> None:
    await api.register("r@example.com")
    first = await api.login("r@example.com")
    second = (await api.client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await api.client.get("/auth/me", headers=api.bearer(second))).status_code == 200


async def test_refresh_by_cookie(api: Api) -> None:
    await api.register("c@example.com")
    await api.login("c@example.com")  # the client keeps the cookie
    response = await api.client.post("/auth/refresh", headers={"Origin": "https://testserver"})
    assert response.status_code == 200
    assert response.json()["refresh_token"] in response.headers["set-cookie"]


async def test_cookie_refresh_refuses_cross_site_origin(api: Api) -> None:
    await api.register("csrf@example.com")
    await api.login("csrf@example.com")
    evil = await api.client.post("/auth/refresh", headers={"Origin": "https://evil.example"})
    assert_problem(evil, 403)
    same = await api.client.post("/auth/refresh", headers={"Origin": "https://testserver"})
    assert same.status_code == 200


async def test_duplicate_within_grace_gets_the_same_successor(api: Api) -> None:
    await api.register("g@example.com")
    first = await api.login("g@example.com")
    a = await api.client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    b = await api.client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert a.status_code == b.status_code == 200
    assert a.json()["refresh_token"] == b.json()["refresh_token"]
    assert a.json()["access_token"] == b.json()["access_token"]


@pytest.mark.parametrize("settings_overrides", [{"refresh_grace_seconds": 0}])
async def test_reuse_revokes_the_whole_family(
    kit_factory: object, settings_factory: object, settings_overrides: dict[str, int]
) -> None:
    from tenantkit.mail import MemoryMailer
    from tests.helpers import serve

    kit = kit_factory(settings_factory(**settings_overrides), mailer=MemoryMailer())  # type: ignore[operator]
    async with serve(kit.build_app(), base_url="https://testserver") as client:
        api = Api(client, kit, MemoryMailer())
        await api.register("reuse@example.com")
        first = await api.login("reuse@example.com")
        second = (await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
        replay = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
        body = assert_problem(replay, 401)
        assert body["type"].endswith("token-reuse")
        # the newest refresh token and its access token die too
        assert_problem(
            await client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]}), 401
        )
        assert_problem(await client.get("/auth/me", headers=api.bearer(second)), 401)


async def test_twenty_concurrent_refreshes_mint_one_successor(api: Api) -> None:
    from sqlalchemy import func, select

    from tenantkit.db.models import RefreshToken

    await api.register("race@example.com")
    first = await api.login("race@example.com")
    responses = await asyncio.gather(
        *(api.client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]}) for _ in range(20))
    )
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["refresh_token"] for r in responses}) == 1
    async with api.kit.database.session() as session:
        live = await session.scalar(select(func.count()).where(RefreshToken.spent_at.is_(None)))
        total = await session.scalar(select(func.count()).select_from(RefreshToken))
    assert live == 1
    assert total == 2
    me = await api.client.get("/auth/me", headers=api.bearer(responses[0].json()))
    assert me.status_code == 200


@pytest.mark.parametrize("token", ["", "tkr_short", "tkr_" + "A" * 43, "not a token", "x" * 5000])
async def test_refresh_with_bad_tokens_is_401(api: Api, token: str) -> None:
    response = await api.client.post("/auth/refresh", json={"refresh_token": token})
    assert response.status_code in (401, 422)
    assert response.status_code != 500


async def test_refresh_without_any_token_is_401(api: Api) -> None:
    assert_problem(await api.client.post("/auth/refresh"), 401)


async def test_logout_ends_the_session_at_once(api: Api) -> None:
    await api.register("out@example.com")
    tokens = await api.login("out@example.com")
    response = await api.client.post("/auth/logout", headers=api.bearer(tokens))
    assert response.status_code == 204
    assert (
        'refresh_token=""' in response.headers["set-cookie"] or "Max-Age=0" in response.headers["set-cookie"]
    )
    assert_problem(await api.client.get("/auth/me", headers=api.bearer(tokens)), 401)
    assert_problem(
        await api.client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401
    )
    assert_problem(await api.client.post("/auth/logout", headers=api.bearer(tokens)), 401)


async def test_logout_all_ends_every_session(api: Api) -> None:
    await api.register("all@example.com")
    one = await api.login("all@example.com")
    two = await api.login("all@example.com")
    assert (await api.client.post("/auth/logout-all", headers=api.bearer(one))).status_code == 204
    for tokens in (one, two):
        assert_problem(await api.client.get("/auth/me", headers=api.bearer(tokens)), 401)


async def test_me_lists_expanded_permissions(api: Api) -> None:
    reg = await api.register("me@example.com")
    tokens = await api.login("me@example.com")
    me = (await api.client.get("/auth/me", headers=api.bearer(tokens))).json()
    assert me["id"] == reg["user"]["id"]
    assert me["email"] == "me@example.com"
    assert me["tenant"] == reg["tenant"]
    assert me["role"] == "ADMIN"
    assert "users.read" in me["permissions"]
    assert not any("*" in p for p in me["permissions"])


async def test_protected_routes_need_a_valid_token(api: Api) -> None:
    for headers in [{}, {"Authorization": "Bearer garbage"}, {"Authorization": "Basic dXNlcjpwdw=="}]:
        response = await api.client.get("/auth/me", headers=headers)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_sessions_list_and_revoke_one(api: Api) -> None:
    await api.register("dev@example.com")
    laptop = await api.login("dev@example.com")
    phone = await api.client.post(
        "/auth/login",
        json={"email": "dev@example.com", "password": api.passwords["dev@example.com"]},
        headers={"User-Agent": "phone/1.0"},
    )
    phone_tokens = phone.json()
    listing = (await api.client.get("/auth/sessions", headers=api.bearer(laptop))).json()["items"]
    assert len(listing) == 2
    assert sum(1 for s in listing if s["current"]) == 1
    assert {"id", "user_agent", "ip", "created_at", "last_used_at", "current"} <= set(listing[0])
    phone_session = next(s for s in listing if s["user_agent"] == "phone/1.0")
    assert phone_session["ip"] == "203.0.113.7"
    deleted = await api.client.delete(f"/auth/sessions/{phone_session['id']}", headers=api.bearer(laptop))
    assert deleted.status_code == 204
    assert_problem(await api.client.get("/auth/me", headers=api.bearer(phone_tokens)), 401)
    assert (await api.client.get("/auth/me", headers=api.bearer(laptop))).status_code == 200


async def test_cannot_revoke_someone_elses_session(api: Api) -> None:
    await api.register("alice@example.com")
    await api.register("bob@example.com")
    alice = await api.login("alice@example.com")
    bob = await api.login("bob@example.com")
    bob_session = (await api.client.get("/auth/sessions", headers=api.bearer(bob))).json()["items"][0]["id"]
    assert_problem(await api.client.delete(f"/auth/sessions/{bob_session}", headers=api.bearer(alice)), 404)
    assert_problem(await api.client.delete("/auth/sessions/not-a-uuid", headers=api.bearer(alice)), 404)
    assert (await api.client.get("/auth/me", headers=api.bearer(bob))).status_code == 200


async def test_switch_tenant(api: Api) -> None:
    first = await api.register("multi@example.com", tenant_name="One")
    admin_two = await api.register("owner2@example.com", tenant_name="Two")
    owner2 = await api.login("owner2@example.com")
    invite = await api.client.post(
        "/users/invitations", json={"email": "multi@example.com", "role": "USER"}, headers=api.bearer(owner2)
    )
    tokens = await api.login("multi@example.com")
    accepted = await api.client.post(
        "/auth/invitations/accept",
        json={"invite_token": invite.json()["invite_token"]},
        headers=api.bearer(tokens),
    )
    assert accepted.status_code == 200
    assert accepted.json()["role"] == "USER"
    switched = await api.client.post(
        "/auth/switch-tenant", json={"tenant": admin_two["tenant"]["slug"]}, headers=api.bearer(tokens)
    )
    assert switched.status_code == 200
    me = (await api.client.get("/auth/me", headers=api.bearer(switched.json()))).json()
    assert me["tenant"]["id"] == admin_two["tenant"]["id"]
    assert me["role"] == "USER"
    third = await api.register("stranger@example.com", tenant_name="Three")
    refused = await api.client.post(
        "/auth/switch-tenant", json={"tenant": third["tenant"]["id"]}, headers=api.bearer(tokens)
    )
    assert_problem(refused, 403)
    assert first["tenant"]["id"] != admin_two["tenant"]["id"]


async def test_invitation_is_single_use_and_bound_to_email(api: Api) -> None:
    await api.register("boss@example.com")
    await api.register("someone@example.com")
    await api.register("intruder@example.com")
    boss = await api.login("boss@example.com")
    invite = (
        await api.client.post(
            "/users/invitations",
            json={"email": "someone@example.com", "role": "USER"},
            headers=api.bearer(boss),
        )
    ).json()
    assert api.mailer.outbox[-1].to == "someone@example.com"
    assert invite["invite_token"] in api.mailer.outbox[-1].body
    intruder = await api.login("intruder@example.com")
    wrong_person = await api.client.post(
        "/auth/invitations/accept",
        json={"invite_token": invite["invite_token"]},
        headers=api.bearer(intruder),
    )
    assert_problem(wrong_person, 403)
    someone = await api.login("someone@example.com")
    ok = await api.client.post(
        "/auth/invitations/accept", json={"invite_token": invite["invite_token"]}, headers=api.bearer(someone)
    )
    assert ok.status_code == 200
    again = await api.client.post(
        "/auth/invitations/accept", json={"invite_token": invite["invite_token"]}, headers=api.bearer(someone)
    )
    assert_problem(again, 404)
    forged = await api.client.post(
        "/auth/invitations/accept",
        json={"invite_token": "tki_" + "0" * 32 + "_" + "A" * 43},
        headers=api.bearer(someone),
    )
    assert_problem(forged, 404)


async def test_new_user_registers_with_invitation(api: Api) -> None:
    owner = await api.register("inviter@example.com")
    tokens = await api.login("inviter@example.com")
    invite = (
        await api.client.post(
            "/users/invitations",
            json={"email": "newbie@example.com", "role": "USER"},
            headers=api.bearer(tokens),
        )
    ).json()
    assert invite["role"] == "USER"
    registered = await api.client.post(
        "/auth/register",
        json={
            "email": "newbie@example.com",
            "password": "password123",
            "invite_token": invite["invite_token"],
        },
    )
    assert registered.status_code == 201
    assert registered.json()["tenant"]["id"] == owner["tenant"]["id"]
    assert registered.json()["role"] == "USER"


async def test_join_without_invitation_needs_open_signup(api: Api) -> None:
    owner = await api.register("closed@example.com")
    response = await api.client.post(
        "/auth/register",
        json={"email": "walkin@example.com", "password": "password123"},
        headers={"X-Tenant-ID": owner["tenant"]["slug"]},
    )
    assert_problem(response, 403)
    from sqlalchemy import update

    from tenantkit.db.models import Tenant

    async with api.kit.database.session() as session, session.begin():
        await session.execute(update(Tenant).values(open_signup=True))
    await api.kit.directory.tenant_changed(uuid.UUID(owner["tenant"]["id"]), owner["tenant"]["slug"])
    joined = await api.client.post(
        "/auth/register",
        json={"email": "walkin@example.com", "password": "password123"},
        headers={"X-Tenant-ID": owner["tenant"]["slug"]},
    )
    assert joined.status_code == 201
    assert joined.json()["role"] == "USER"


async def test_password_change_ends_other_sessions(api: Api) -> None:
    await api.register("pw@example.com")
    current = await api.login("pw@example.com")
    other = await api.login("pw@example.com")
    wrong = await api.client.post(
        "/auth/password",
        json={"current_password": "not-it-at-all", "new_password": "new-password-1"},
        headers=api.bearer(current),
    )
    assert_problem(wrong, 401)
    ok = await api.client.post(
        "/auth/password",
        json={"current_password": api.passwords["pw@example.com"], "new_password": "new-password-1"},
        headers=api.bearer(current),
    )
    assert ok.status_code == 204
    assert (await api.client.get("/auth/me", headers=api.bearer(current))).status_code == 200
    assert_problem(await api.client.get("/auth/me", headers=api.bearer(other)), 401)
    assert_problem(
        await api.client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]}), 401
    )
    await api.login("pw@example.com", "new-password-1")


async def test_password_reset_flow(api: Api) -> None:
    await api.register("forgot@example.com")
    session = await api.login("forgot@example.com")
    for _ in range(5):  # an attacker locks the account...
        await api.client.post("/auth/login", json={"email": "forgot@example.com", "password": "bad-bad"})
    accepted = await api.client.post("/auth/password-reset", json={"email": "Forgot@Example.com"})
    assert accepted.status_code == 202
    unknown = await api.client.post("/auth/password-reset", json={"email": "nobody@example.com"})
    assert unknown.status_code == 202
    assert unknown.json() == accepted.json()
    for _ in range(50):
        if api.mailer.outbox:
            break
        await asyncio.sleep(0.02)
    assert len(api.mailer.outbox) == 1
    mail = api.mailer.outbox[0]
    token = next(word for word in mail.body.split() if word.startswith("tkp_"))
    done = await api.client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": "brand-new-pass"}
    )
    assert done.status_code == 204
    assert_problem(await api.client.get("/auth/me", headers=api.bearer(session)), 401)
    await api.login("forgot@example.com", "brand-new-pass")  # ...and the reset lifts the lock
    reused = await api.client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": "another-pass-1"}
    )
    assert_problem(reused, 400)
    assert_problem(
        await api.client.post(
            "/auth/password-reset/confirm", json={"token": "tkp_bogus", "new_password": "x" * 10}
        ),
        400,
    )


async def test_jwks_is_404_for_hs256(api: Api) -> None:
    assert_problem(await api.client.get("/.well-known/jwks.json"), 404)


async def test_tokens_are_stored_only_as_digests(api: Api) -> None:
    from sqlalchemy import select

    from tenantkit.db.models import Invitation, RefreshToken

    await api.register("digest@example.com")
    tokens = await api.login("digest@example.com")
    invite = (
        await api.client.post(
            "/users/invitations", json={"email": "x@example.com", "role": "USER"}, headers=api.bearer(tokens)
        )
    ).json()
    from tenantkit.tenancy import unscoped

    with unscoped("test: every stored invitation digest"):
        async with api.kit.database.session() as session:
            digests = (await session.scalars(select(RefreshToken.digest))).all()
            invite_digests = (await session.scalars(select(Invitation.digest))).all()
    import hashlib

    assert hashlib.sha256(tokens["refresh_token"].encode()).digest() in digests
    assert all(tokens["refresh_token"].encode() not in d for d in digests)
    assert hashlib.sha256(invite["invite_token"].encode()).digest() in invite_digests
