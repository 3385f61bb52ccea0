"""The audit log: batched writes, flush on shutdown, and ``GET /audit``."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event, func, select

from tenantkit.admin import create_user
from tenantkit.audit import AuditLog
from tenantkit.db.models import AuditEvent
from tenantkit.db.scoping import tenant_scope
from tests.helpers import Api, assert_problem

PASSWORD = "correct horse battery"


async def tenant_with_member(api: Api, admin_email: str, member_email: str) -> tuple[dict[str, Any], str]:
    registered = await api.register(admin_email)
    tenant = await api.kit.directory.get(uuid.UUID(registered["tenant"]["id"]))
    assert tenant is not None
    member_id = await create_user(api.kit, member_email, PASSWORD, tenant=tenant, role="USER")
    api.passwords[member_email] = PASSWORD
    return registered, str(member_id)


async def test_role_change_appears_in_the_tenants_audit_log_and_login_failure_does_not(api: Api) -> None:
    registered, member_id = await tenant_with_member(api, "boss@example.com", "staff@example.com")
    tenant_id = registered["tenant"]["id"]
    failed = await api.client.post(
        "/auth/login",
        json={"email": "staff@example.com", "password": "wrong-password"},
        headers={"X-Tenant-ID": tenant_id},
    )
    assert failed.status_code == 401
    admin = api.bearer(await api.login("boss@example.com"))
    changed = await api.client.patch(f"/users/{member_id}/role", json={"role": "ADMIN"}, headers=admin)
    assert changed.status_code == 200, changed.text

    # An unauthenticated failure is not the tenant's to read (anyone could name the tenant):
    # it goes to the platform's security log, with the request id and address, and no actor.
    listed = await api.client.get("/audit", params={"action": "login.failed"}, headers=admin)
    assert listed.status_code == 200, listed.text
    assert listed.json()["items"] == []
    from tenantkit.audit import AuditQuery

    await api.kit.audit_log.flush()
    (failure,), _ = await api.kit.audit_log.query(AuditQuery(None, action="login.failed"))
    assert failure["actor_id"] is None and failure["target"] is None
    assert failure["ip"] == "203.0.113.7"
    assert failed.headers["X-Request-ID"] == failure["request_id"]

    roles = (await api.client.get("/audit", params={"action": "membership.*"}, headers=admin)).json()
    # newest first: the founder's membership, the operator's membership.added, then the role change
    change, added = roles["items"][:2]
    assert added["action"] == "membership.added" and added["target"] == member_id
    assert change["action"] == "membership.role_changed"
    assert change["target"] == member_id and change["data"] == {"from": "USER", "to": "ADMIN"}
    assert change["ip"] == "203.0.113.7"  # the request's client address, recorded without being passed

    boss_id = registered["user"]["id"]
    mine = (await api.client.get("/audit", params={"actor_id": boss_id}, headers=admin)).json()["items"]
    assert {e["action"] for e in mine} >= {"login.succeeded", "membership.role_changed", "user.registered"}
    assert all(e["actor_id"] == boss_id for e in mine)


async def test_pagination_and_time_filters(api: Api) -> None:
    await api.register("pager@example.com")
    admin = api.bearer(await api.login("pager@example.com"))
    for _ in range(3):
        await api.login("pager@example.com")
    first = (await api.client.get("/audit?limit=2", headers=admin)).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = (
        await api.client.get("/audit", params={"limit": 50, "cursor": first["next_cursor"]}, headers=admin)
    ).json()
    ids = [e["id"] for e in first["items"]] + [e["id"] for e in second["items"]]
    assert len(ids) == len(set(ids)) >= 5  # registered + 4 logins
    assert second["next_cursor"] is None
    newest = first["items"][0]["created_at"]
    later = (await api.client.get("/audit", params={"since": newest}, headers=admin)).json()["items"]
    assert [e["id"] for e in later] == [first["items"][0]["id"]]
    earlier = (await api.client.get("/audit", params={"until": newest}, headers=admin)).json()["items"]
    assert first["items"][0]["id"] not in {e["id"] for e in earlier} and earlier
    bad = await api.client.get("/audit?limit=0&since=yesterday&colour=red", headers=admin)
    problem = assert_problem(bad, 422)
    assert {tuple(e["loc"]) for e in problem["errors"]} == {  # type: ignore[attr-defined]
        ("query", "limit"),
        ("query", "since"),
        ("query", "colour"),
    }
    assert_problem(await api.client.get("/audit?cursor=not-a-cursor", headers=admin), 400)


async def test_tenants_are_isolated_and_users_are_refused(api: Api) -> None:
    await tenant_with_member(api, "alpha@example.com", "alpha-user@example.com")
    await api.register("beta@example.com")
    await api.login("alpha@example.com")
    beta = api.bearer(await api.login("beta@example.com"))
    seen = (await api.client.get("/audit?limit=500", headers=beta)).json()["items"]
    assert seen and {e["actor_id"] for e in seen} == {seen[0]["actor_id"]}
    assert all(e["target"] != "alpha-user@example.com" for e in seen)

    user = api.bearer(await api.login("alpha-user@example.com"))
    assert_problem(await api.client.get("/audit", headers=user), 403)
    assert_problem(await api.client.get("/audit"), 401)


async def test_shutdown_flushes_every_buffered_event(kit_factory: Any, settings_factory: Any) -> None:
    kit = kit_factory(settings_factory(audit_flush_ms=60000, audit_batch_size=10000))
    await kit.startup()
    tenant_id = uuid.uuid4()
    for n in range(250):
        kit.events.audit("test.event", tenant_id=tenant_id, data={"n": n})
    assert kit.audit_log.pending == 250
    await kit.shutdown()
    reopened = kit_factory()
    with tenant_scope(tenant_id):
        async with reopened.database.session() as session:
            count = await session.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
            )
        assert count == 250


async def test_a_thousand_events_take_a_handful_of_inserts(kit_factory: Any) -> None:
    kit = kit_factory()
    log = AuditLog(kit.database, batch_size=200, flush_ms=50)
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_EVENTS"):
            statements.append(statement)

    event.listen(kit.database.engine.sync_engine, "before_cursor_execute", count)
    try:
        await log.start()
        tenant_id = uuid.uuid4()
        for n in range(1000):
            log.record({"action": "bulk.event", "tenant_id": str(tenant_id), "data": {"n": n}})
        await log.stop()
    finally:
        event.remove(kit.database.engine.sync_engine, "before_cursor_execute", count)
    with tenant_scope(tenant_id):
        async with kit.database.session() as session:
            written = await session.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
            )
        assert written == 1000 and log.written == 1000 and log.dropped == 0
        assert 1 <= len(statements) <= 10, len(statements)


async def test_overflow_past_twice_the_bound_drops_oldest_and_counts(kit_factory: Any) -> None:
    kit = kit_factory()
    log = AuditLog(kit.database, batch_size=10, flush_ms=60000, max_buffer=20)  # never started
    for n in range(45):
        log.record({"action": "flood", "data": {"n": n}})
    assert log.pending == 40 and log.dropped == 5
    await log.append({"action": "flood", "data": {"n": 45}})  # backpressure: flushes first
    assert log.pending == 1
    await log.stop()
    assert log.written == 41
