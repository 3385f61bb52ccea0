"""PostgreSQL row-level security: the roles, the policy shape and the start-up check.

Two roles, created by tenantkit's migrations (``tk0006``) when missing:

* ``tenantkit_app`` (:data:`APP_ROLE`): what the application connects as. ``LOGIN``,
  ``NOSUPERUSER``, ``NOBYPASSRLS``, ``NOINHERIT``, owns nothing; it holds
  ``SELECT/INSERT/UPDATE/DELETE`` on the tables and ``USAGE`` on the sequences.
* ``tenantkit_crosstenant`` (:data:`CROSS_TENANT_ROLE`): ``NOLOGIN``, granted to the
  app role. Because the app role is ``NOINHERIT`` it gets nothing from this
  membership until a transaction enters it with ``SET LOCAL ROLE`` (what
  :func:`tenantkit.tenancy.unscoped` blocks do).

Each tenant table gets ``ENABLE`` and ``FORCE ROW LEVEL SECURITY`` and two policies:

* ``tenantkit_isolation`` (every role):
  ``tenant_id = NULLIF(current_setting('tenantkit.tenant_id', true), '')::uuid``
  for reads (``USING``) and writes (``WITH CHECK``). A never-set and an emptied
  setting both fail closed. It is a plain equality with a stable right-hand
  side, so the planner uses it as an index condition on ``(tenant_id, ...)``.
* ``tenantkit_crosstenant``: ``USING (true) WITH CHECK (true)`` for
  ``tenantkit_crosstenant`` only. Policies are chosen by role when the query is
  planned: the app role's plans never see this one (no ``OR`` evaluated per row).

Superusers, ``BYPASSRLS`` roles and table owners without ``FORCE`` skip RLS:
:func:`check_rls_enforced` (run by the kit at start-up) refuses such a
connection in production and warns in development.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

from sqlalchemy import text

from tenantkit.db.engine import Database
from tenantkit.errors import ConfigurationError

__all__ = [
    "APP_PASSWORD_ENV",
    "APP_ROLE",
    "CROSS_TENANT_ROLE",
    "check_rls_enforced",
    "create_roles",
    "disable_rls",
    "enable_rls",
    "grant_app_role",
    "rls_problems",
    "rls_statements",
]

logger = logging.getLogger("tenantkit.tenancy")

APP_ROLE = "tenantkit_app"
CROSS_TENANT_ROLE = "tenantkit_crosstenant"
#: When set, the ``tk0006`` migration sets the app role's password from it.
APP_PASSWORD_ENV = "TENANTKIT_APP_DB_PASSWORD"

_SETTING = "NULLIF(current_setting('tenantkit.tenant_id', true), '')::uuid"
_DML = "SELECT, INSERT, UPDATE, DELETE"
_POLICIES = ("tenantkit_isolation", "tenantkit_crosstenant", "tenantkit_unscoped")

# Idempotent and safe when several databases of one cluster migrate at once
# (roles are cluster-wide): a concurrent creation is not an error.
_ROLES_SQL = """
DO $tenantkit$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tenantkit_crosstenant') THEN
    BEGIN
      CREATE ROLE tenantkit_crosstenant NOLOGIN NOSUPERUSER NOBYPASSRLS;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tenantkit_app') THEN
    BEGIN
      CREATE ROLE tenantkit_app LOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
  END IF;
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'tenantkit_app' AND rolinherit) THEN
    ALTER ROLE tenantkit_app NOINHERIT;
  END IF;
  IF NOT pg_has_role('tenantkit_app', 'tenantkit_crosstenant', 'MEMBER') THEN
    BEGIN
      GRANT tenantkit_crosstenant TO tenantkit_app;
    EXCEPTION WHEN unique_violation THEN NULL;
    END;
  END IF;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE EXCEPTION 'tenantkit: the migrating role cannot create or change the roles tenantkit_app and '
    'tenantkit_crosstenant; have a superuser create them first (see the tenancy docs): %', SQLERRM;
END
$tenantkit$
"""


def role_statements() -> list[str]:
    """SQL creating :data:`APP_ROLE` and :data:`CROSS_TENANT_ROLE` when missing (idempotent)."""
    return [_ROLES_SQL]


def rls_statements(table: str) -> list[str]:
    """The SQL giving ``table`` forced RLS with tenantkit's policies and the roles' grants.

    Idempotent: it replaces earlier policies (including the pre-``tk0006``
    ``tenantkit_unscoped`` one). The roles must exist (:func:`role_statements`).
    """
    return [
        f'GRANT {_DML} ON "{table}" TO {APP_ROLE}, {CROSS_TENANT_ROLE}',
        f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY',
        f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY',
        *(f'DROP POLICY IF EXISTS {name} ON "{table}"' for name in _POLICIES),
        f'CREATE POLICY tenantkit_isolation ON "{table}" USING (tenant_id = {_SETTING}) '
        f"WITH CHECK (tenant_id = {_SETTING})",
        f'CREATE POLICY tenantkit_crosstenant ON "{table}" TO {CROSS_TENANT_ROLE} '
        "USING (true) WITH CHECK (true)",
    ]


def _postgres(op: Any) -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def create_roles(op: Any) -> None:
    """In a migration: create the app and cross-tenant roles when missing (no-op on SQLite)."""
    if _postgres(op):
        for statement in role_statements():
            op.execute(statement)


def enable_rls(op: Any, *tables: str) -> None:
    """In a migration: ``enable_rls(op, "products", "orders")`` (no-op on SQLite).

    Creates the roles if needed, grants them the tables and (re)creates the policies.
    """
    if not _postgres(op):
        return
    create_roles(op)
    for table in tables:
        for statement in rls_statements(table):
            op.execute(statement)


def disable_rls(op: Any, *tables: str) -> None:
    """The downgrade counterpart of :func:`enable_rls` (the cluster-wide roles stay)."""
    if not _postgres(op):
        return
    for table in tables:
        for name in _POLICIES:
            op.execute(f'DROP POLICY IF EXISTS {name} ON "{table}"')
        op.execute(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY')
        op.execute(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY')


def grant_app_role(op: Any) -> None:
    """In a migration: grant both roles DML on every table, USAGE on sequences, now and later.

    ``ALTER DEFAULT PRIVILEGES`` covers the tables the migrating role creates
    afterwards in the same schema. Tables owned by someone else are skipped
    with a warning by PostgreSQL.
    """
    if not _postgres(op):
        return
    roles = f"{APP_ROLE}, {CROSS_TENANT_ROLE}"
    op.execute(
        f"""
DO $tenantkit$
DECLARE schema_name text := current_schema();
BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO {roles}', schema_name);
  EXECUTE format('GRANT {_DML} ON ALL TABLES IN SCHEMA %I TO {roles}', schema_name);
  EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO {roles}', schema_name);
  EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT {_DML} ON TABLES TO {roles}', schema_name);
  EXECUTE format(
    'ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO {roles}', schema_name
  );
END
$tenantkit$
"""
    )


def set_app_password(op: Any) -> None:
    """In a migration: set the app role's password from ``$TENANTKIT_APP_DB_PASSWORD`` when given.

    Skipped (with a log line) when the migrating role may not change roles.
    """
    password = os.environ.get(APP_PASSWORD_ENV)
    if not password or not _postgres(op):
        return
    bind = op.get_bind()
    allowed = bind.execute(
        text("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
    ).scalar()
    if not allowed:
        logger.warning("%s is set but the migrating role cannot change %s", APP_PASSWORD_ENV, APP_ROLE)
        return
    literal = password.replace("'", "''")
    bind.exec_driver_sql(f"ALTER ROLE {APP_ROLE} PASSWORD '{literal}'")


# ---------------------------------------------------------------------- #
# The start-up check
# ---------------------------------------------------------------------- #

_ROLE_SQL = text(
    """
SELECT r.rolname, r.rolsuper, r.rolbypassrls,
       EXISTS (SELECT FROM pg_roles c WHERE c.rolname = :cross
               AND pg_has_role(current_user, c.oid, 'USAGE')) AS inherits_crosstenant
FROM pg_roles r WHERE r.rolname = current_user
"""
)

_TABLES_SQL = text(
    """
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
       pg_has_role(current_user, c.relowner, 'USAGE') AS owned
FROM pg_class c
WHERE c.relkind IN ('r', 'p') AND c.relnamespace = to_regnamespace(current_schema())::oid
  AND (c.relrowsecurity OR c.relname = ANY(:tenant_tables))
"""
)


async def rls_problems(database: Database, tenant_tables: Iterable[str] | None = None) -> list[str]:
    """Why this connection could read or write other tenants' rows (empty when RLS stands).

    Args:
        database: The database as the application connects to it.
        tenant_tables: Names of the tenant-owned tables (default: every mapped
            :class:`~tenantkit.tenancy.TenantOwned` model's table). Each must
            have RLS enabled; tables with RLS must not be owned by the
            connecting role unless RLS is forced.
    """
    if database.dialect != "postgresql":
        return []
    if tenant_tables is None:
        from tenantkit.db.scoping import tenant_owned_tables

        tenant_tables = tenant_owned_tables()
    names = sorted(set(tenant_tables))
    async with database.engine.connect() as connection:
        role, superuser, bypass, inherits = (
            await connection.execute(_ROLE_SQL, {"cross": CROSS_TENANT_ROLE})
        ).one()
        tables = (await connection.execute(_TABLES_SQL, {"tenant_tables": names})).all()
    problems = []
    if superuser:
        problems.append(f"the database role {role!r} is a superuser")
    if bypass:
        problems.append(f"the database role {role!r} has BYPASSRLS")
    if inherits:
        problems.append(
            f"the database role {role!r} inherits {CROSS_TENANT_ROLE} (make it NOINHERIT: "
            f"ALTER ROLE {role} NOINHERIT)"
        )
    for name, enabled, forced, owned in sorted(tables):
        if not enabled:
            problems.append(f"table {name!r} is tenant-owned but has no row-level security")
        elif owned and not forced:
            problems.append(f"the database role {role!r} owns table {name!r} and its RLS is not forced")
    return problems


async def check_rls_enforced(database: Database, env: str) -> None:
    """The kit's start-up check: can this connection bypass row-level security?

    In production a bypass (superuser, ``BYPASSRLS``, owner of a tenant table
    without ``FORCE``, a tenant table without RLS) refuses to start with
    :class:`~tenantkit.errors.ConfigurationError`; in development it is a
    warning; in tests a debug line. A database that does not answer refuses
    a production start too (the check cannot pass). SQLite has no RLS:
    nothing to check.
    """
    try:
        problems = await rls_problems(database)
    except Exception as exc:  # unreachable database: fail closed in production only
        if env == "production":
            raise ConfigurationError(
                f"cannot verify row-level security: the database did not answer ({type(exc).__name__})"
            ) from exc
        logger.warning("row-level security check skipped: %s", type(exc).__name__)
        return
    if not problems:
        return
    message = (
        "row-level security does not bind this database connection: "
        + "; ".join(problems)
        + f". Connect as {APP_ROLE} (see the tenancy docs)."
    )
    if env == "production":
        raise ConfigurationError(message)
    logger.log(logging.WARNING if env == "development" else logging.DEBUG, message)
