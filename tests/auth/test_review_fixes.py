"""Findings of the outside review on the auth routes: each test fails on the code before the fix."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tenantkit import Settings, TenantKit
from tenantkit.mail import MemoryMailer
from tests.auth.conftest import Api
from tests.helpers import assert_problem, serve


async def test_cookie_refresh_without_origin_is_refused_outside_development(api: Api) -> None:
    await api.register("no-origin@example.com")
    await api.login("no-origin@example.com")
    assert_problem(await api.client.post("/auth/refresh"), 403)
    assert (
        await api.client.post("/auth/refresh", headers={"Origin": "https://testserver"})
    ).status_code == 200


async def test_cookie_refresh_without_origin_is_allowed_in_development(
    kit_factory: Callable[..., TenantKit], settings_factory: Callable[..., Settings]
) -> None:
    kit = kit_factory(settings_factory(env="development"), mailer=MemoryMailer())
    async with serve(kit.build_app(), base_url="https://testserver") as client:
        api = Api(client, kit, MemoryMailer())
        await api.register("dev@example.com")
        await api.login("dev@example.com")
        assert (await client.post("/auth/refresh")).status_code == 200


async def _change(api: Api, tokens: dict[str, Any], current: str) -> Any:
    return await api.client.post(
        "/auth/password",
        json={"current_password": current, "new_password": "another-good-pass"},
        headers=api.bearer(tokens),
    )


async def test_wrong_current_password_counts_toward_the_lockout(api: Api) -> None:
    await api.register("oracle@example.com")
    tokens = await api.login("oracle@example.com")
    for _ in range(5):
        assert_problem(await _change(api, tokens, "guess-guess"), 401)
    locked = await _change(api, tokens, api.passwords["oracle@example.com"])
    assert_problem(locked, 423)
    assert int(locked.headers["retry-after"]) > 0
    # ...and it is the account's one lock: sign-in is locked too.
    login = await api.client.post(
        "/auth/login", json={"email": "oracle@example.com", "password": api.passwords["oracle@example.com"]}
    )
    assert_problem(login, 423)


async def test_password_change_is_rate_limited_per_user(
    kit_factory: Callable[..., TenantKit], settings_factory: Callable[..., Settings]
) -> None:
    kit = kit_factory(
        settings_factory(rate_limit_auth="3/minute", lockout_threshold=50), mailer=MemoryMailer()
    )
    async with serve(kit.build_app(), base_url="https://testserver") as client:
        api = Api(client, kit, MemoryMailer())
        await api.register("limited@example.com")
        tokens = await api.login("limited@example.com")
        statuses = [(await _change(api, tokens, f"guess-{n}-guess")).status_code for n in range(4)]
        assert statuses[:3] == [401, 401, 401]
        assert statuses[3] == 429


async def test_failed_sign_ins_never_reach_a_tenant_audit_log(api: Api) -> None:
    owner = await api.register("owner@example.com", tenant_name="Poisoned")
    tenant = owner["tenant"]["id"]
    for email in ("owner@example.com", "nobody@example.com"):  # one account exists, one does not
        response = await api.client.post(
            "/auth/login", json={"email": email, "password": "wrong-pass"}, headers={"X-Tenant-ID": tenant}
        )
        assert_problem(response, 401)
    tokens = await api.login("owner@example.com")
    await api.kit.audit_log.flush()
    page = (await api.client.get("/audit?limit=100", headers=api.bearer(tokens))).json()
    actions = [item["action"] for item in page["items"]]
    assert "login.failed" not in actions
    assert "login.succeeded" in actions
    # The platform's security log has both failures, and they look alike: no actor, no email.
    from tenantkit.audit import AuditQuery

    platform, _ = await api.kit.audit_log.query(AuditQuery(None, action="login.failed"))
    assert len(platform) == 2
    shapes = [{k: v for k, v in row.items() if k in ("actor_id", "target", "data")} for row in platform]
    assert shapes[0] == shapes[1]
    assert all(row["actor_id"] is None and row["target"] is None for row in platform)
