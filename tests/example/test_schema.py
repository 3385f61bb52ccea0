"""The app's tables follow the Citus rule and match their migration on both backends."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from inventory_app import models
from tenantkit import Base, Settings
from tenantkit.db import Database

APP_TABLES = ("products", "stock_movements", "orders", "order_items")


@pytest.mark.parametrize("name", APP_TABLES)
def test_tenant_id_leads_every_key_constraint_and_index(name: str) -> None:
    table = Base.metadata.tables[name]
    assert [c.name for c in table.primary_key.columns] == ["tenant_id", "id"]
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint):
            assert next(iter(constraint.columns)).name == "tenant_id", constraint
        if isinstance(constraint, sa.ForeignKeyConstraint):
            assert "tenant_id" in constraint.column_keys, constraint
    for index in table.indexes:
        assert next(iter(index.columns)).name == "tenant_id", index
    assert issubclass(
        getattr(models, "".join(p.title() for p in name.rstrip("s").split("_"))), models.TenantScoped
    )


async def test_models_match_the_migration(settings_factory: Callable[..., Settings]) -> None:
    database = Database(settings_factory().resolved_database_url)

    def diff(connection: sa.Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return [
            change
            for change in compare_metadata(context, Base.metadata)
            if any(table in repr(change) for table in APP_TABLES)
        ]

    try:
        async with database.engine.connect() as connection:
            assert await connection.run_sync(diff) == []
    finally:
        await database.dispose()
