"""Fail-closed ORM tenant scoping (SQLAlchemy's ``do_orm_execute`` recipe).

Every ORM SELECT, UPDATE and DELETE touching a :class:`TenantScoped` model is
filtered to the current tenant with ``with_loader_criteria`` (joins, aliases,
subqueries, relationship and eager loads included). New objects get
``tenant_id`` filled in; an object carrying another tenant's id is refused.
With no tenant in context a scoped statement raises :class:`TenantScopeError`.
``unscoped(reason)`` is the explicit, logged way across tenants.

On PostgreSQL each transaction also sets ``tenantkit.tenant_id`` with
``set_config(..., true)`` (transaction-local) for the row-level security
policies created by :func:`tenantkit.tenancy.rls.enable_rls`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from sqlalchemy import event, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import (
    Mapped,
    ORMExecuteState,
    Session,
    SessionTransaction,
    UOWTransaction,
    declared_attr,
    mapped_column,
    with_loader_criteria,
)

from tenantkit.context import current_tenant_id
from tenantkit.db.base import new_id
from tenantkit.db.engine import ScopedSession
from tenantkit.errors import TenantScopeError

__all__ = ["TenantScoped", "is_unscoped", "scoped_get", "unscoped"]

logger = logging.getLogger("tenantkit.tenancy")

_unscoped: ContextVar[str | None] = ContextVar("tenantkit_unscoped", default=None)

UNSCOPED_OPTION = "tenantkit_unscoped"

ScopedT = TypeVar("ScopedT", bound="TenantScoped")


class TenantScoped:
    """Mixin for tenant-owned models: composite primary key ``(tenant_id, id)``.

    ``tenant_id`` leads the primary key (and should lead every unique
    constraint and index) so tables can be distributed by tenant (Citus).
    Use :func:`scoped_get` to load by the public ``id``.
    """

    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(primary_key=True, index=False, sort_order=-10)

    @declared_attr
    def id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(primary_key=True, default=new_id, sort_order=-9)


def is_unscoped() -> bool:
    """True inside an :func:`unscoped` block."""
    return _unscoped.get() is not None


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


def _is_scoped(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, TenantScoped)


def _touches_scoped(state: ORMExecuteState) -> bool:
    try:
        mappers = state.all_mappers
    except Exception:  # pragma: no cover - defensive: unusual statements
        return False
    return any(_is_scoped(m.class_) for m in mappers)


@event.listens_for(ScopedSession, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> None:
    if state.is_column_load or state.is_relationship_load:
        return  # the criteria already propagate to these loads
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.execution_options.get(UNSCOPED_OPTION) or _unscoped.get() is not None:
        return
    if not _touches_scoped(state):
        return
    tenant_id = current_tenant_id()
    if tenant_id is None:
        raise TenantScopeError(
            "query on a tenant-scoped model with no tenant in context; "
            "enter one with tenant_context() or cross tenants with unscoped(reason)"
        )
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantScoped,
            lambda cls: cls.tenant_id == tenant_id,
            include_aliases=True,
        )
    )


@event.listens_for(ScopedSession, "before_flush")
def _check_writes(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    if _unscoped.get() is not None:
        return
    tenant_id = current_tenant_id()
    for obj in session.new:
        if not isinstance(obj, TenantScoped):
            continue
        if tenant_id is None:
            raise TenantScopeError(f"cannot insert {type(obj).__name__} with no tenant in context")
        owner: uuid.UUID | None = getattr(obj, "tenant_id", None)
        if owner is None:
            obj.tenant_id = tenant_id
        elif owner != tenant_id:
            raise TenantScopeError(f"refusing to insert {type(obj).__name__} for another tenant")
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, TenantScoped) and obj.tenant_id != tenant_id:
            raise TenantScopeError(f"refusing to write {type(obj).__name__} of another tenant")


@event.listens_for(ScopedSession, "after_begin")
def _set_rls_tenant(session: Session, _transaction: SessionTransaction, connection: Connection) -> None:
    if connection.dialect.name != "postgresql":
        return
    tenant_id = current_tenant_id()
    connection.execute(
        text(
            "SELECT set_config('tenantkit.tenant_id', :tenant, true), "
            "set_config('tenantkit.unscoped', :bypass, true)"
        ),
        {"tenant": str(tenant_id) if tenant_id else "", "bypass": "on" if _unscoped.get() else ""},
    )


async def scoped_get(session: AsyncSession, model: type[ScopedT], id: uuid.UUID) -> ScopedT | None:
    """Load a scoped object by its public ``id`` within the current tenant (``None`` if absent)."""
    result = await session.execute(select(model).where(model.id == id))
    return result.scalar_one_or_none()
