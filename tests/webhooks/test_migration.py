"""The tk0003 migration: tables, tenant-first keys, row-level security on PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from tenantkit.context import TenantRef, tenant_context
from tenantkit.db.engine import Database
from tenantkit.jobs import JobRunner
from tenantkit.observability.metrics import Metrics
from tenantkit.webhooks import WebhookService
from tests.webhooks.conftest import Receiver

TABLES = ("webhook_endpoints", "webhook_deliveries", "webhook_attempts")


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
async def test_tables_keys_and_foreign_keys_lead_with_tenant_id(database: Database) -> None:
    def inspect(connection: sa.Connection) -> dict[str, dict[str, object]]:
        inspector = sa.inspect(connection)
        return {
            table: {
                "pk": inspector.get_pk_constraint(table)["constrained_columns"],
                "fks": {
                    (tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]))
                    for fk in inspector.get_foreign_keys(table)
                },
                "uniques": [u["column_names"] for u in inspector.get_unique_constraints(table)],
            }
            for table in TABLES
        }

    async with database.engine.connect() as connection:
        found = await connection.run_sync(inspect)
    for table in TABLES:
        assert found[table]["pk"] == ["tenant_id", "id"]
        assert (("tenant_id",), "tenants", ("id",)) in found[table]["fks"]  # type: ignore[operator]
    assert (("tenant_id", "endpoint_id"), "webhook_endpoints", ("tenant_id", "id")) in found[
        "webhook_deliveries"
    ]["fks"]  # type: ignore[operator]
    assert (("tenant_id", "delivery_id"), "webhook_deliveries", ("tenant_id", "id")) in found[
        "webhook_attempts"
    ]["fks"]  # type: ignore[operator]
    assert found["webhook_deliveries"]["uniques"] == [["tenant_id", "event_id"]]


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_row_level_security_is_forced_on_postgres(database: Database) -> None:
    async with database.engine.connect() as connection:
        rows = (
            await connection.execute(
                sa.text(
                    "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                    "WHERE relname IN ('webhook_endpoints', 'webhook_deliveries', 'webhook_attempts')"
                )
            )
        ).all()
        policies = (
            await connection.execute(
                sa.text("SELECT tablename, policyname FROM pg_policies WHERE tablename LIKE 'webhook_%'")
            )
        ).all()
    assert sorted(rows) == sorted((table, True, True) for table in TABLES)
    assert {(t, p) for t, p in policies} == {
        (table, policy) for table in TABLES for policy in ("tenantkit_isolation", "tenantkit_crosstenant")
    }


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_delivery_and_the_relay_work_under_row_level_security(
    db_url: str, tenants: tuple[TenantRef, TenantRef], receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a plain role (RLS applies): the relay crosses tenants only through ``unscoped``."""
    a, b = tenants
    role = f"tk_app_{uuid.uuid4().hex[:8]}"
    admin = Database(db_url)
    async with admin.engine.begin() as connection:
        # like tenantkit_app: a NOINHERIT member of the cross-tenant role that unscoped() enters
        await connection.execute(sa.text(f'CREATE ROLE "{role}" NOLOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS'))
        await connection.execute(sa.text(f'GRANT tenantkit_crosstenant TO "{role}"'))
        await connection.execute(sa.text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
        await connection.execute(
            sa.text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"')
        )
    app_db = Database(db_url)

    def as_role(dbapi_connection: object, _record: object) -> None:
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        cursor.execute(f'SET ROLE "{role}"')
        cursor.close()
        dbapi_connection.commit()  # type: ignore[attr-defined]  # a later rollback must not undo it

    event.listen(app_db.engine.sync_engine, "connect", as_role)
    jobs = JobRunner(database=app_db, metrics=Metrics(), retry_base=0.0)
    await jobs.startup()
    try:
        service = WebhookService(app_db, jobs, allow_hosts=["127.0.0.1"], relay_after=0.0)

        async def not_queued(delivery_ids: list[uuid.UUID]) -> None:
            return None

        monkeypatch.setattr(service.delivery, "enqueue", not_queued)  # as if the jobs were lost
        with tenant_context(a):
            await service.create_endpoint(receiver.url(), ["*"])
            (delivery_id,) = await service.emit("order.created", {"n": 1})
        with tenant_context(b):
            await service.create_endpoint(receiver.url(), ["*"])
            await service.emit("order.created", {"n": 2})
        assert await service.delivery.relay() == 2
        await jobs.join()
        assert len(receiver.on("/hook")) == 2
        with tenant_context(a):
            assert [(d.id, d.status) for d in await service.list_deliveries()] == [(delivery_id, "delivered")]
        async with app_db.engine.connect() as connection:  # raw SQL, no ORM filter: RLS alone hides rows
            await connection.execute(
                sa.text("SELECT set_config('tenantkit.tenant_id', :t, false)"), {"t": str(b.id)}
            )
            visible = (await connection.execute(sa.text("SELECT tenant_id FROM webhook_deliveries"))).all()
        assert visible == [(b.id,)]
    finally:
        await jobs.shutdown()
        await app_db.dispose()
        async with admin.engine.begin() as connection:
            await connection.execute(sa.text(f'DROP OWNED BY "{role}"'))
            await connection.execute(sa.text(f'DROP ROLE "{role}"'))
        await admin.dispose()
