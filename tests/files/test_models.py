"""The ``files`` table: migration, Citus-ready keys, row-level security."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tenantkit.db.engine import Database
from tenantkit.files import FileObject


def test_tenant_id_leads_every_key() -> None:
    table = FileObject.__table__
    assert isinstance(table, sa.Table)
    assert [c.name for c in table.primary_key.columns] == ["tenant_id", "id"]
    uniques = [c for c in table.constraints if isinstance(c, sa.UniqueConstraint)]
    assert uniques
    assert all(next(iter(c.columns)).name == "tenant_id" for c in uniques)


@pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_the_migration_matches_the_model(database: Database) -> None:
    def inspect(connection: sa.Connection) -> dict[str, object]:
        inspector = sa.inspect(connection)
        return {
            "columns": {c["name"]: c["nullable"] for c in inspector.get_columns("files")},
            "pk": inspector.get_pk_constraint("files")["constrained_columns"],
            "unique": [u["column_names"] for u in inspector.get_unique_constraints("files")],
        }

    async with database.engine.connect() as connection:
        found = await connection.run_sync(inspect)
    table = FileObject.__table__
    assert isinstance(table, sa.Table)
    assert found["columns"] == {c.name: c.nullable for c in table.columns}
    assert found["pk"] == ["tenant_id", "id"]
    assert found["unique"] == [["tenant_id", "key"]]


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_row_level_security_is_forced_on_postgres(database: Database) -> None:
    async with database.engine.connect() as connection:
        row = (
            await connection.execute(
                sa.text("SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'files'")
            )
        ).one()
        policies = set(
            (
                await connection.execute(
                    sa.text("SELECT policyname FROM pg_policies WHERE tablename = 'files'")
                )
            )
            .scalars()
            .all()
        )
    assert tuple(row) == (True, True)
    assert policies == {"tenantkit_isolation", "tenantkit_crosstenant"}
