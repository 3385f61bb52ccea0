"""A real plugin proves every auth hook fires with useful arguments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tenantkit import TenantKit, hookimpl
from tenantkit.mail import MemoryMailer
from tests.auth.conftest import Api
from tests.helpers import serve


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def args(self, name: str) -> dict[str, Any]:
        return next(kwargs for n, kwargs in self.calls if n == name)

    @hookimpl
    def tenantkit_on_register(self, user_id: str, email: str, tenant_id: str, role: str) -> None:
        self.calls.append(
            ("register", {"user_id": user_id, "email": email, "tenant_id": tenant_id, "role": role})
        )

    @hookimpl
    async def tenantkit_on_login(self, user_id: str, tenant_id: str, session_id: str, ip: str | None) -> None:
        self.calls.append(
            ("login", {"user_id": user_id, "tenant_id": tenant_id, "session_id": session_id, "ip": ip})
        )

    @hookimpl
    def tenantkit_on_login_failed(self, email: str, reason: str, ip: str | None) -> None:
        self.calls.append(("login_failed", {"email": email, "reason": reason, "ip": ip}))

    @hookimpl
    def tenantkit_on_lockout(self, email: str, until: float, ip: str | None) -> None:
        self.calls.append(("lockout", {"email": email, "until": until, "ip": ip}))

    @hookimpl
    def tenantkit_on_logout(self, user_id: str, session_ids: list[str], reason: str) -> None:
        self.calls.append(("logout", {"user_id": user_id, "session_ids": session_ids, "reason": reason}))

    @hookimpl
    def tenantkit_on_token_reuse(
        self, user_id: str, session_id: str, classification: str, ip: str | None
    ) -> None:
        self.calls.append(
            ("reuse", {"user_id": user_id, "session_id": session_id, "classification": classification})
        )

    @hookimpl
    def tenantkit_on_tenant_created(self, tenant: Any, owner_id: str | None) -> None:
        self.calls.append(("tenant_created", {"slug": tenant.slug, "owner_id": owner_id}))

    @hookimpl
    def tenantkit_access_token_claims(self, user_id: str, tenant_id: str, role: str) -> dict[str, Any]:
        return {"plan": "gold", "sub": "attacker-controlled"}  # reserved claims are ignored

    @hookimpl
    def tenantkit_on_audit_event(self, event: dict[str, Any]) -> None:
        self.calls.append(("audit", event))


async def test_every_auth_hook_fires(
    kit_factory: Callable[..., TenantKit], settings_factory: Callable[..., Any]
) -> None:
    recorder = Recorder()
    kit = kit_factory(settings_factory(refresh_grace_seconds=0), plugins=[recorder], mailer=MemoryMailer())
    async with serve(kit.build_app(), base_url="https://testserver") as client:
        api = Api(client, kit, MemoryMailer())
        reg = await api.register("hooks@example.com", tenant_name="Hooked")
        assert recorder.args("register") == {
            "user_id": reg["user"]["id"],
            "email": "hooks@example.com",
            "tenant_id": reg["tenant"]["id"],
            "role": "ADMIN",
        }
        assert recorder.args("tenant_created") == {"slug": "hooked", "owner_id": reg["user"]["id"]}

        tokens = await api.login("hooks@example.com")
        login = recorder.args("login")
        assert login["user_id"] == reg["user"]["id"]
        assert login["ip"] == "203.0.113.7"
        principal = kit.tokens.verify(tokens["access_token"])
        assert principal.claims["plan"] == "gold"
        assert principal.claims["sub"] == reg["user"]["id"]
        assert str(principal.session_id) == login["session_id"]

        second = (await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).json()
        await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        reuse = recorder.args("reuse")
        assert reuse == {
            "user_id": reg["user"]["id"],
            "session_id": login["session_id"],
            "classification": "spent",
        }
        logout = recorder.args("logout")
        assert logout["reason"] == "token_reuse"
        assert logout["session_ids"] == [login["session_id"]]
        assert second["refresh_token"]

        for _ in range(5):
            await client.post("/auth/login", json={"email": "hooks@example.com", "password": "wrong-pass"})
        failed = recorder.args("login_failed")
        assert failed == {"email": "hooks@example.com", "reason": "invalid_credentials", "ip": "203.0.113.7"}
        assert recorder.args("lockout")["email"] == "hooks@example.com"
        await client.post("/auth/login", json={"email": "hooks@example.com", "password": "wrong-pass"})
        reasons = [kwargs["reason"] for name, kwargs in recorder.calls if name == "login_failed"]
        assert reasons[-1] == "locked"  # a refusal while locked is a failed sign-in too
    audits = [event["action"] for name, event in recorder.calls if name == "audit"]
    for action in ("user.registered", "login.succeeded", "token.reuse", "login.failed", "login.locked"):
        assert action in audits
