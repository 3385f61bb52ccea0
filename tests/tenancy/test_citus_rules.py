"""The Citus rule from DESIGN.md, checked over tenantkit's and the example app's metadata.

A table carrying ``tenant_id`` is distributed by it: ``tenant_id`` leads its
primary key and appears in every unique constraint, every unique index and
every foreign key to another distributed table. Global tables are reference
tables: they never point at a distributed table.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase

import tenantkit.db.models
import tenantkit.files
import tenantkit.webhooks
from tenantkit.db.base import Base
from tenantkit.tenancy import TenantScoped

#: tenantkit's declared global (reference) tables (see ``tenantkit.db.models``).
#: ``auth_sessions`` records the tenant a session is bound to, but is read by
#: session id across tenants (refresh, logout-all), so it is global on purpose.
GLOBAL_TABLES = {
    "tenants",
    "users",
    "auth_sessions",
    "refresh_tokens",
    "password_reset_tokens",
    "sso_domains",
}


def _distributed(table: sa.Table) -> bool:
    return "tenant_id" in table.c and table.name not in GLOBAL_TABLES


def violations(tables: list[sa.Table]) -> list[str]:
    """Every breach of the rule, as readable lines (empty when the schema is Citus-ready)."""
    problems: list[str] = []
    for table in tables:
        if not _distributed(table):
            for fk in table.foreign_key_constraints:
                if _distributed(fk.referred_table):
                    problems.append(
                        f"{table.name}: global table references distributed {fk.referred_table.name}"
                    )
            continue
        pk = [c.name for c in table.primary_key.columns]
        if not pk or pk[0] != "tenant_id":
            problems.append(f"{table.name}: primary key {pk} does not lead with tenant_id")
        for constraint in table.constraints:
            if isinstance(constraint, sa.UniqueConstraint):
                columns = [c.name for c in constraint.columns]
                if "tenant_id" not in columns:
                    problems.append(f"{table.name}: unique constraint {columns} lacks tenant_id")
        for index in table.indexes:
            columns = [getattr(e, "name", str(e)) for e in index.expressions]
            if index.unique and "tenant_id" not in columns:
                problems.append(f"{table.name}: unique index {index.name} {columns} lacks tenant_id")
        for column in table.columns:
            if column.unique and column.name != "tenant_id":
                problems.append(f"{table.name}: column {column.name} is unique on its own")
        for fk in table.foreign_key_constraints:
            if not _distributed(fk.referred_table):
                continue  # distributed → reference is allowed
            pairs = {(e.parent.name, e.column.name) for e in fk.elements}
            if ("tenant_id", "tenant_id") not in pairs:
                problems.append(
                    f"{table.name}: foreign key {sorted(pairs)} to {fk.referred_table.name} lacks tenant_id"
                )
    return problems


def tables_of(package: str) -> list[sa.Table]:
    """The tables of models defined in ``package`` on tenantkit's ``Base`` (apps share it)."""
    tables = {
        mapper.local_table
        for mapper in Base.registry.mappers
        if mapper.class_.__module__.partition(".")[0] == package and isinstance(mapper.local_table, sa.Table)
    }
    return sorted(tables, key=lambda t: t.name)


def tenantkit_tables() -> list[sa.Table]:
    assert tenantkit.db.models and tenantkit.files and tenantkit.webhooks  # imported for their tables
    return tables_of("tenantkit")


def test_tenantkit_models_follow_the_citus_rule() -> None:
    tables = tenantkit_tables()
    names = {t.name for t in tables}
    assert names >= GLOBAL_TABLES
    assert {"memberships", "roles", "invitations", "audit_events", "files", "webhook_endpoints"} <= names
    assert violations(tables) == []


def test_every_tenant_scoped_model_is_distributed() -> None:
    tenantkit_tables()  # import the framework's models
    scoped_tables = [
        mapper.local_table
        for mapper in Base.registry.mappers
        if issubclass(mapper.class_, TenantScoped) and isinstance(mapper.local_table, sa.Table)
    ]
    scoped = {table.name for table in scoped_tables}
    assert violations(scoped_tables) == []  # whichever app models are loaded too
    assert scoped.isdisjoint(GLOBAL_TABLES)
    assert {"files", "webhook_endpoints", "webhook_deliveries", "webhook_attempts"} <= scoped


def test_the_checker_catches_breaches() -> None:
    metadata = sa.MetaData()
    parent = sa.Table(
        "parents",
        metadata,
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("code", sa.String, unique=True),
    )
    child = sa.Table(
        "children",
        metadata,
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("parent_id", sa.Uuid),
        sa.Column("parent_tenant", sa.Uuid),
        sa.Column("email", sa.String),
        sa.ForeignKeyConstraint(["parent_tenant", "parent_id"], ["parents.tenant_id", "parents.id"]),
        sa.Index("ix_children_email", "email", unique=True),
    )
    lookup = sa.Table(
        "lookups",
        metadata,
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("parent_id", sa.Uuid),
        sa.Column("parent_tenant", sa.Uuid),
        sa.ForeignKeyConstraint(["parent_tenant", "parent_id"], ["parents.tenant_id", "parents.id"]),
    )
    found = "\n".join(violations([parent, child, lookup]))
    assert "parents: unique constraint ['code'] lacks tenant_id" in found
    assert "children: primary key ['id', 'tenant_id'] does not lead with tenant_id" in found
    assert "children: unique index ix_children_email ['email'] lacks tenant_id" in found
    assert "children: foreign key" in found and "to parents lacks tenant_id" in found
    assert "lookups: global table references distributed parents" in found


def _app_models() -> ModuleType:
    if (
        importlib.util.find_spec("inventory_app") is None
        or importlib.util.find_spec("inventory_app.models") is None
    ):
        pytest.skip("the example app's models (inventory_app.models) are not there yet")
    return importlib.import_module("inventory_app.models")


def test_example_app_models_follow_the_citus_rule() -> None:
    module = _app_models()
    tables = tables_of(module.__name__.partition(".")[0])
    for value in vars(module).values():  # models on a base of the app's own, if any
        if (
            isinstance(value, type)
            and issubclass(value, DeclarativeBase)
            and value.metadata is not Base.metadata
        ):
            tables.extend(value.metadata.sorted_tables)
    assert tables, "inventory_app.models defines no tables"
    assert violations(tables) == []
    assert any(_distributed(t) for t in tables), "a brand's data should be tenant-scoped"
