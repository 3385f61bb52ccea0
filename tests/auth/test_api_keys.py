"""API keys over HTTP (API.md "service accounts"), on SQLite + memory and PostgreSQL + Redis."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from tenantkit.admin import create_user
from tenantkit.db.base import utcnow
from tenantkit.db.models import ApiKey
from tenantkit.db.scoping import unscoped
from tests.auth.conftest import Api
from tests.helpers import assert_problem, eventually


async def _admin(api: Api, email: str = "owner@example.com") -> tuple[dict[str, Any], dict[str, str]]:
    registered = await api.register(email)
    return registered, api.bearer(await api.login(email))


async def _key(api: Api, admin: dict[str, str], scopes: list[str], **extra: Any) -> dict[str, Any]:
    created = await api.client.post(
        "/api-keys", json={"name": "ci", "scopes": scopes, **extra}, headers=admin
    )
    assert created.status_code == 201, created.text
    return dict(created.json())


async def test_a_key_acts_in_its_tenant_with_its_scopes(api: Api) -> None:
    registered, admin = await _admin(api)
    key = await _key(api, admin, ["users.read"])
    assert key["key"].startswith(key["prefix"] + "_") and key["prefix"].startswith("tk_")
    assert key["scopes"] == ["users.read"] and key["expires_at"] is None

    for headers in ({"Authorization": f"Bearer {key['key']}"}, {"X-API-Key": key["key"]}):
        assert (await api.client.get("/users", headers=headers)).status_code == 200
        assert_problem(await api.client.get("/audit", headers=headers), 403)  # outside its scopes
    me = (await api.client.get("/auth/me", headers={"X-API-Key": key["key"]})).json()
    assert me == {
        "api_key": {"id": key["id"], "name": "ci"},
        "tenant": registered["tenant"],
        "permissions": ["users.read"],
    }
    listed = (await api.client.get("/api-keys", headers=admin)).json()["items"]
    assert [k["id"] for k in listed] == [key["id"]] and "key" not in listed[0]


async def test_scopes_are_bounded_by_the_creator(api: Api) -> None:
    _, admin = await _admin(api)
    beyond = await api.client.post(
        "/api-keys", json={"name": "x", "scopes": ["tenants.manage"]}, headers=admin
    )  # a platform permission no tenant ADMIN holds
    assert_problem(beyond, 403)
    unknown = await api.client.post("/api-keys", json={"name": "x", "scopes": ["nope.read"]}, headers=admin)
    assert_problem(unknown, 422)
    long_lived = await api.client.post(
        "/api-keys", json={"name": "x", "scopes": ["users.read"], "expires_in_days": 3651}, headers=admin
    )
    assert_problem(long_lived, 422)


async def test_a_key_loses_what_its_creator_loses(api: Api) -> None:
    registered, admin = await _admin(api)
    tenant = await api.kit.directory.get(uuid.UUID(registered["tenant"]["id"]))
    assert tenant is not None
    second_admin = await create_user(
        api.kit, "second@example.com", "second-password", tenant=tenant, role="ADMIN"
    )
    api.passwords["second@example.com"] = "second-password"
    other = api.bearer(await api.login("second@example.com"))
    key = await _key(api, other, ["users.read"])
    headers = {"X-API-Key": key["key"]}
    assert (await api.client.get("/users", headers=headers)).status_code == 200
    demoted = await api.client.patch(f"/users/{second_admin}/role", json={"role": "USER"}, headers=admin)
    assert demoted.status_code == 200, demoted.text
    assert_problem(await api.client.get("/users", headers=headers), 403)  # its creator lost users.read


async def test_revoked_and_expired_keys_stop_at_once(api: Api, two_instances: tuple[Api, Any]) -> None:
    first, second_client = two_instances
    _, admin = await _admin(first)
    key = await _key(first, admin, ["users.read"])
    headers = {"X-API-Key": key["key"]}
    assert (await second_client.get("/users", headers=headers)).status_code == 200  # warm on B
    revoked = await first.client.delete(f"/api-keys/{key['id']}", headers=admin)
    assert revoked.status_code == 204
    assert_problem(await eventually(lambda: second_client.get("/users", headers=headers), 401), 401)
    assert_problem(await first.client.delete(f"/api-keys/{key['id']}", headers=admin), 404)

    expiring = await _key(first, admin, ["users.read"], expires_in_days=1)
    with unscoped("test: age a key"):
        async with first.kit.database.session() as session, session.begin():
            await session.execute(
                update(ApiKey)
                .where(ApiKey.id == uuid.UUID(expiring["id"]))
                .values(expires_at=utcnow() - timedelta(seconds=1))
                .execution_options(synchronize_session=False)
            )
    assert_problem(await first.client.get("/users", headers={"X-API-Key": expiring["key"]}), 401)


async def test_keys_are_refused_on_session_routes_and_wrong_keys_are_401(api: Api) -> None:
    _, admin = await _admin(api)
    key = await _key(api, admin, ["users.read", "api_keys.manage"])
    headers = {"Authorization": f"Bearer {key['key']}"}
    for method, path in (
        ("POST", "/auth/logout"),
        ("POST", "/auth/logout-all"),
        ("GET", "/auth/sessions"),
        ("POST", "/auth/2fa/totp/setup"),
        ("GET", "/api-keys"),
    ):
        assert_problem(await api.client.request(method, path, headers=headers), 403)
    password = await api.client.post(
        "/auth/password", json={"current_password": "x" * 8, "new_password": "y" * 12}, headers=headers
    )
    assert_problem(password, 403)
    forged = key["key"][:-4] + ("AAAA" if not key["key"].endswith("AAAA") else "BBBB")
    assert_problem(await api.client.get("/users", headers={"X-API-Key": forged}), 401)
    assert_problem(await api.client.get("/users", headers={"X-API-Key": "tk_nothing"}), 401)


async def test_keys_are_stored_hashed_and_name_themselves_in_audit_rows(api: Api) -> None:
    registered, admin = await _admin(api)
    key = await _key(api, admin, ["users.invite"])
    invited = await api.client.post(
        "/users/invitations",
        json={"email": "new@example.com", "role": "USER"},
        headers={"X-API-Key": key["key"]},
    )
    assert invited.status_code == 201, invited.text
    await api.kit.api_keys.flush()
    await api.kit.audit_log.flush()
    rows = (await api.client.get("/audit", params={"action": "invitation.*"}, headers=admin)).json()["items"]
    assert rows and rows[0]["data"]["api_key_id"] == key["id"]
    with unscoped("test: read the stored key"):
        async with api.kit.database.session() as session:
            stored = await session.scalar(select(ApiKey).where(ApiKey.id == uuid.UUID(key["id"])))
    assert stored is not None and stored.last_used_at is not None
    # The secret follows "tk_<public id>_" and may itself contain "_".
    assert key["key"].startswith(key["prefix"] + "_")
    secret = key["key"][len(key["prefix"]) + 1 :]
    assert len(secret) >= 32 and secret.encode() not in stored.digest and len(stored.digest) == 32
    assert registered["tenant"]["id"] == str(stored.tenant_id)


async def test_a_key_has_its_own_rate_limit(kit_factory: Any, settings_factory: Any) -> None:
    from tenantkit.mail import MemoryMailer
    from tests.helpers import serve

    kit = kit_factory(
        settings_factory(rate_limit_api="4/minute", rate_limit_tenant="1000/minute"), mailer=MemoryMailer()
    )
    async with serve(kit.build_app(), base_url="https://testserver") as client:
        api = Api(client, kit, MemoryMailer())
        _, admin = await _admin(api)
        key = await _key(api, admin, ["users.read"])  # the creator has spent 1 of their 4 (POST /api-keys)
        statuses = [
            (await client.get("/users", headers={"X-API-Key": key["key"]})).status_code for _ in range(5)
        ]
        assert statuses == [200, 200, 200, 200, 429]
        assert (await client.get("/users", headers=admin)).status_code == 200  # the creator's own budget


async def test_the_access_log_names_the_key(api: Api) -> None:
    import io
    import json
    import logging

    from tenantkit.observability.logging import JSONFormatter

    _, admin = await _admin(api)
    key = await _key(api, admin, ["users.read"])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    access = logging.getLogger("tenantkit.access")
    access.addHandler(handler)
    previous = access.level
    access.setLevel(logging.INFO)
    try:
        assert (await api.client.get("/users", headers={"X-API-Key": key["key"]})).status_code == 200
    finally:
        access.removeHandler(handler)
        access.setLevel(previous)
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["api_key_id"] == key["id"] and line["route"] == "/users"
    assert key["key"] not in stream.getvalue()  # never the secret
