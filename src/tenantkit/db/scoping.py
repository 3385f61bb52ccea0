"""Fail-closed ORM tenant scoping (SQLAlchemy's ``do_orm_execute`` recipe).

Every ORM SELECT, UPDATE and DELETE touching a :class:`TenantOwned` model
(:class:`TenantScoped` is the usual one) is
filtered to the current tenant with ``with_loader_criteria`` (joins, aliases,
subqueries, ``select_from()`` and relationship and eager loads included).
New objects and ORM bulk ``insert()`` rows get ``tenant_id`` filled in; an
object, row or ``.values(tenant_id=...)`` naming another tenant is refused.
With no tenant in context a scoped statement raises :class:`TenantScopeError`.
``unscoped(reason)`` is the explicit, logged way across tenants.

On PostgreSQL each transaction also sets ``tenantkit.tenant_id`` with
``set_config(..., true)`` (transaction-local) for the row-level security
policies created by :func:`tenantkit.db.rls.enable_rls`; an ``unscoped``
transaction enters the ``tenantkit_crosstenant`` role with ``SET LOCAL ROLE``
(when the connecting role is a member of it and is subject to RLS at all).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from sqlalchemy import Select, String, bindparam, event, func, literal_column, select, text, true
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import (
    Mapped,
    Mapper,
    ORMExecuteState,
    Session,
    SessionTransaction,
    UOWTransaction,
    declared_attr,
    mapped_column,
    with_loader_criteria,
)
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter, ClauseElement
from sqlalchemy.sql.expression import TableClause

from tenantkit.context import TenantRef, current_tenant, current_tenant_id, tenant_context
from tenantkit.db import fastpath
from tenantkit.db.base import TenantOwned, new_id
from tenantkit.db.engine import Database, ScopedSession
from tenantkit.db.rls import CROSS_TENANT_ROLE
from tenantkit.errors import ServiceUnavailableError, TenantScopeError

__all__ = [
    "ScopedRead",
    "TenantOwned",
    "TenantScoped",
    "is_unscoped",
    "scoped_get",
    "tenant_owned_tables",
    "tenant_scope",
    "unscoped",
]

logger = logging.getLogger("tenantkit.tenancy")

_unscoped: ContextVar[str | None] = ContextVar("tenantkit_unscoped", default=None)

UNSCOPED_OPTION = "tenantkit_unscoped"

ScopedT = TypeVar("ScopedT", bound="TenantScoped")


class TenantScoped(TenantOwned):
    """Mixin for tenant-owned models: composite primary key ``(tenant_id, id)``.

    ``tenant_id`` (from :class:`TenantOwned`) leads the primary key (and should lead every unique
    constraint and index) so tables can be distributed by tenant (Citus).
    Use :func:`scoped_get` to load by the public ``id``.
    """

    @declared_attr
    def id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(primary_key=True, default=new_id, sort_order=-9)


def is_unscoped() -> bool:
    """True inside an :func:`unscoped` block."""
    return _unscoped.get() is not None


@contextmanager
def tenant_scope(tenant_id: uuid.UUID) -> Iterator[None]:
    """Run a block's queries in the tenant ``tenant_id`` (kit code that knows only the id).

    Keeps the current :class:`~tenantkit.context.TenantRef` when it is that tenant;
    otherwise enters ``tenant_context`` with a reference holding only the id.
    """
    current = current_tenant()
    if current is not None and current.id == tenant_id:
        yield
        return
    with tenant_context(TenantRef(id=tenant_id, slug="")):
        yield


@contextmanager
def unscoped(reason: str, *, system: bool = False) -> Iterator[None]:
    """Cross tenants explicitly: scoping is off inside the block. Logged with ``reason``.

    Prefer ``kit.unscoped(reason)``, which also writes an audit event. ``system=True``
    marks tenantkit's own background loops (claiming due work across tenants), logged
    at DEBUG so a poll every second does not flood the log.
    """
    if not reason:
        raise ValueError("unscoped() needs a reason")
    logger.log(logging.DEBUG if system else logging.WARNING, "unscoped access", extra={"reason": reason})
    token = _unscoped.set(reason)
    try:
        yield
    finally:
        _unscoped.reset(token)


#: Tables of mapped ``TenantOwned`` classes, filled as mappers are constructed.
_scoped_tables: set[TableClause] = set()


@event.listens_for(Mapper, "after_mapper_constructed")
def _register_scoped_table(mapper: Mapper[Any], class_: type) -> None:
    if issubclass(class_, TenantOwned) and isinstance(mapper.local_table, TableClause):
        _scoped_tables.add(mapper.local_table)


def tenant_owned_tables() -> set[str]:
    """Names of the tables of every mapped :class:`TenantOwned` model."""
    return {table.name for table in _scoped_tables}


def _is_scoped_table(element: Any) -> bool:
    if not isinstance(element, TableClause):
        return False
    return element in _scoped_tables or element._deannotate() in _scoped_tables


def _touches_scoped(state: ORMExecuteState) -> bool:
    """Whether the statement reads or writes a scoped table anywhere (FROM, joins, subqueries)."""
    if any(issubclass(m.class_, TenantOwned) for m in state.all_mappers):
        return True
    # ``select(func.count()).select_from(Model)``, ``exists()`` and other statements
    # whose columns name no scoped entity: look at every table they touch.
    statement: Any = state.statement
    return any(_is_scoped_table(element) for element in visitors.iterate(statement))


def _no_tenant() -> TenantScopeError:
    return TenantScopeError(
        "query on a tenant-scoped model with no tenant in context; "
        "enter one with tenant_context() or cross tenants with unscoped(reason)"
    )


def _bound_value(value: Any) -> Any:
    if isinstance(value, BindParameter):
        return value.effective_value
    if not isinstance(value, ClauseElement):
        return value
    raise TenantScopeError("tenant_id must be a plain value in a scoped INSERT or UPDATE")


def _check_statement_values(statement: Any, tenant_id: uuid.UUID) -> bool:
    """Refuse ``.values(tenant_id=<another tenant>)``; True when ``values()`` settles ``tenant_id``."""
    single = getattr(statement, "_values", None) or {}
    multi = [row for batch in getattr(statement, "_multi_values", ()) or () for row in batch]
    named = False
    for row in [single, *multi]:
        for key, value in row.items() if hasattr(row, "items") else ():
            if getattr(key, "key", key) == "tenant_id":
                if _bound_value(value) != tenant_id:
                    raise TenantScopeError("refusing to write rows of another tenant")
                named = True
    return named or bool(multi)  # multi-row values() cannot be completed by parameters


def _checked_parameters(parameters: Any, tenant_id: uuid.UUID, *, fill: bool) -> Any:
    """Execution parameters with ``tenant_id`` checked (and filled in for inserts)."""
    if not parameters:
        return {"tenant_id": tenant_id} if fill else parameters
    many = isinstance(parameters, list | tuple)
    rows = list(parameters) if many else [parameters]
    checked = []
    for row in rows:
        owner = row.get("tenant_id")
        if owner is None:
            checked.append({**row, "tenant_id": tenant_id} if fill else row)
        elif owner != tenant_id:
            raise TenantScopeError("refusing to write rows of another tenant")
        else:
            checked.append(row)
    return checked if many else checked[0]


@event.listens_for(ScopedSession, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> None:
    _sync_rls_tenant(state.session)
    if state.is_column_load:
        return  # refreshing attributes of an object already loaded by primary key
    if not (state.is_select or state.is_update or state.is_delete or state.is_insert):
        return
    if state.execution_options.get(UNSCOPED_OPTION) or _unscoped.get() is not None:
        return
    if not _touches_scoped(state):
        return
    tenant_id = current_tenant_id()
    if tenant_id is None:
        raise _no_tenant()
    if state.is_insert or state.is_update:
        if getattr(state.statement, "select", None) is not None:
            raise TenantScopeError("INSERT ... SELECT into a tenant-scoped table needs unscoped(reason)")
        settled = _check_statement_values(state.statement, tenant_id)
        fill = state.is_insert and not settled
        state.parameters = _checked_parameters(state.parameters, tenant_id, fill=fill)
        if state.is_insert:
            return
    # Also on relationship loads: an object loaded inside ``unscoped()`` (or in
    # another tenant's block) carries no criteria of its own to propagate.
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantOwned,
            lambda cls: cls.tenant_id == tenant_id,
            include_aliases=True,
        )
    )


@event.listens_for(ScopedSession, "before_flush")
def _check_writes(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    _sync_rls_tenant(session)
    if _unscoped.get() is not None:
        return
    tenant_id = current_tenant_id()
    for obj in session.new:
        if not isinstance(obj, TenantOwned):
            continue
        if tenant_id is None:
            raise TenantScopeError(f"cannot insert {type(obj).__name__} with no tenant in context")
        owner: uuid.UUID | None = getattr(obj, "tenant_id", None)
        if owner is None:
            obj.tenant_id = tenant_id
        elif owner != tenant_id:
            raise TenantScopeError(f"refusing to insert {type(obj).__name__} for another tenant")
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, TenantOwned) and getattr(obj, "tenant_id", None) != tenant_id:
            raise TenantScopeError(f"refusing to write {type(obj).__name__} of another tenant")


#: ``session.info`` key: what the open transaction told PostgreSQL (a tenant id, or unscoped).
_RLS_STATE = "tenantkit_rls_state"
_CROSS = "unscoped"
_SET_TENANT = text("SELECT set_config('tenantkit.tenant_id', :tenant, true)")
_SET_TENANT_AND_ROLE = text(
    "SELECT set_config('tenantkit.tenant_id', :tenant, true), set_config('role', :role, true)"
)


def _rls_state() -> uuid.UUID | str | None:
    return _CROSS if _unscoped.get() is not None else current_tenant_id()


def _apply_rls_state(connection: Connection, state: uuid.UUID | str | None, *, entered: bool) -> None:
    """Tell the transaction its tenant (``set_config(..., true)``) and, unscoped, its role."""
    tenant = state if isinstance(state, uuid.UUID) else None
    params = {"tenant": str(tenant) if tenant else ""}
    if state == _CROSS and _may_enter_cross_tenant_role(connection):
        connection.execute(_SET_TENANT_AND_ROLE, {**params, "role": CROSS_TENANT_ROLE})
    elif entered:  # leaving a cross-tenant block inside the same transaction
        connection.execute(_SET_TENANT_AND_ROLE, {**params, "role": "none"})
    else:
        connection.execute(_SET_TENANT, params)


@event.listens_for(ScopedSession, "after_begin")
def _set_rls_tenant(session: Session, _transaction: SessionTransaction, connection: Connection) -> None:
    if connection.dialect.name != "postgresql":
        return
    state = _rls_state()
    _apply_rls_state(connection, state, entered=False)
    session.info[_RLS_STATE] = state


def _sync_rls_tenant(session: Session) -> None:
    """Follow a tenant (or ``unscoped``) entered after the transaction began (PostgreSQL)."""
    if _RLS_STATE not in session.info or not session.in_transaction():
        return
    recorded = session.info[_RLS_STATE]
    state = _rls_state()
    if state == recorded:
        return
    _apply_rls_state(session.connection(), state, entered=recorded == _CROSS)
    session.info[_RLS_STATE] = state


_ROLE_PROBE = text(
    "SELECT r.rolsuper OR r.rolbypassrls, EXISTS ("
    " SELECT FROM pg_auth_members m JOIN pg_roles c ON c.oid = m.roleid"
    " WHERE m.member = r.oid AND c.rolname = :cross)"
    " FROM pg_roles r WHERE r.rolname = current_user"
)


def _may_enter_cross_tenant_role(connection: Connection) -> bool:
    """Whether this connection's role is subject to RLS and a member of the cross-tenant role.

    Asked once per pooled connection (kept in its ``info``). A superuser or
    ``BYPASSRLS`` role sees every row anyway; a role that is not a member
    cannot cross tenants under RLS (logged once per connection).
    """
    cached = connection.info.get("tenantkit_cross_tenant")
    if cached is None:
        bypass, member = connection.execute(_ROLE_PROBE, {"cross": CROSS_TENANT_ROLE}).one()
        cached = bool(member and not bypass)
        connection.info["tenantkit_cross_tenant"] = cached
        if not bypass and not member:
            logger.warning(
                "unscoped(): the database role is subject to row-level security but not a member of %s;"
                " it sees only rows its policies allow",
                CROSS_TENANT_ROLE,
            )
    return bool(cached)


async def scoped_get(session: AsyncSession, model: type[ScopedT], id: uuid.UUID) -> ScopedT | None:
    """Load a scoped object by its public ``id`` within the current tenant (``None`` if absent)."""
    result = await session.execute(select(model).where(model.id == id))
    return result.scalar_one_or_none()


class ScopedRead:
    """A prebuilt hot read of tenant-owned tables, for the current tenant, without the ORM.

    The statement (a Core ``SELECT``, built once) filters by tenant itself through
    a bind parameter named ``tenant_id``; :meth:`rows` fills it from the context
    and, like the ORM filter, raises :class:`TenantScopeError` with no tenant in
    context. Reads follow :meth:`Database.read_session`'s replica rules; the rows
    come back as dictionaries.

    On PostgreSQL it is one statement in one round trip, prepared once per
    connection (asyncpg's statement cache): the row-level security setting is set
    by the statement itself, transaction-local, in a one-row subquery that the
    page joins ``LATERAL`` and references, so PostgreSQL runs it before it reads a
    row; the statement is its own transaction, so the setting ends with it. Were
    the order ever different, the policies would see no tenant and return no rows
    (closed, never another tenant's). Elsewhere (SQLite) it runs through
    SQLAlchemy Core.

    Example:
        ```python
        LIST = ScopedRead(
            select(products).where(products.c.tenant_id == bindparam("tenant_id")).limit(bindparam("n"))
        )
        rows = await LIST.rows(kit.database, {"n": 21})
        ```
    """

    def __init__(self, statement: Select[Any]) -> None:
        if "tenant_id" not in statement.compile().params:
            raise ValueError(
                "a ScopedRead filters by tenant: its statement needs a bind parameter 'tenant_id'"
            )
        self.statement = fastpath.FastStatement(statement)
        rls = select(
            func.set_config(
                literal_column("'tenantkit.tenant_id'"),
                bindparam("tenantkit_rls_tenant", type_=String()),
                literal_column("true"),
            ).label("tk")
        ).subquery("tenantkit_rls")
        page = statement.where(rls.c.tk.is_not(None)).lateral("tenantkit_page")
        self.postgresql = fastpath.FastStatement(select(*page.c).select_from(rls.join(page, true())))

    async def rows(self, database: Database, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The statement's rows for the current tenant (``params`` fill its other bind parameters)."""
        tenant = current_tenant_id()
        if tenant is None:
            raise _no_tenant()
        values = {**params, "tenant_id": tenant}
        async with database.read_connection() as connection:
            if connection.dialect.name != "postgresql":
                result = await connection.execute(self.statement.statement, values)
                return [dict(row._mapping) for row in result]
            raw = await connection.get_raw_connection()
            values["tenantkit_rls_tenant"] = str(tenant)
            sql, args = fastpath.driver_args(self.postgresql, values)
            try:
                records = await raw.driver_connection.fetch(sql, *args)  # type: ignore[union-attr]
            except fastpath.lost_connection() as exc:
                await connection.invalidate(exc)
                raise ServiceUnavailableError("The database is unavailable; try again shortly.") from exc
        return [dict(record.items()) for record in records]
