"""The shared core of :class:`tenantkit.tenancy.service.TenancyService`.

Collaborators, the tenant lock every membership change takes first
(``SELECT ... FOR UPDATE`` on the tenant's row on PostgreSQL; on SQLite the
transaction's first statement is a write, which takes the database's write
lock before anything is read), the grant checks, and the side effects queued
until after the commit.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tenantkit.context import TenantRef, tenant_context
from tenantkit.db.engine import Database, UnitOfWork
from tenantkit.db.models import Membership, Role, Tenant
from tenantkit.errors import PermissionDeniedError, TenantNotFoundError, ValidationError
from tenantkit.events import Events
from tenantkit.mail import Mail
from tenantkit.rbac.roles import ADMIN, BUILTIN_ROLES, SUPER_ADMIN, RoleBook
from tenantkit.tenancy.directory import TenantDirectory

__all__ = ["PLATFORM_SLUG", "RESERVED_SLUGS", "SessionEnder", "TenancyCore", "lock_tenant"]

#: The tenant that holds the platform operators (``tenantkit create-superadmin``).
PLATFORM_SLUG = "platform"
#: Slugs never given to a tenant a user creates (the app's path prefix is added).
RESERVED_SLUGS = frozenset({PLATFORM_SLUG, "admin", "api", "auth", "www", "t"})


class SessionEnder(Protocol):
    """Ends a member's sessions in one tenant (``auth``'s sessions implement it)."""

    async def end_member_sessions(self, user_id: uuid.UUID, tenant_id: uuid.UUID, *, reason: str) -> None:
        """End every live session of ``user_id`` bound to ``tenant_id``."""


async def lock_tenant(session: AsyncSession, tenant_id: uuid.UUID, *, dialect: str) -> None:
    """Serialise changes to one tenant for the rest of ``session``'s transaction, or 404.

    PostgreSQL: ``SELECT ... FOR UPDATE`` on the tenant's row. SQLite has no row
    locks: a write takes the database's write lock (and, as the transaction's first
    statement, before anything is read).
    """
    if dialect == "sqlite":
        result = await session.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id)
            .values(updated_at=Tenant.updated_at)
            .execution_options(synchronize_session=False)
        )
        found = result.rowcount == 1  # type: ignore[attr-defined]
    else:
        found = (
            await session.scalar(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())
        ) is not None
    if not found:
        raise TenantNotFoundError("Unknown tenant.")


def _scope(tenant: TenantRef | None) -> contextlib.AbstractContextManager[Any]:
    return tenant_context(tenant) if tenant is not None else contextlib.nullcontext()


class TenancyCore:
    """What every tenancy rule shares: collaborators, the tenant lock, side effects."""

    def __init__(
        self,
        *,
        database: Database,
        directory: TenantDirectory,
        roles: RoleBook,
        events: Events,
        sessions: SessionEnder,
        send_mail: Callable[[Mail], Awaitable[None]],
        invitation_ttl: int,
        reserved_slugs: Iterable[str] = (),
    ) -> None:
        self.database = database
        self.directory = directory
        self.roles = roles
        self.events = events
        self.sessions = sessions
        self.send_mail = send_mail
        self.invitation_ttl = invitation_ttl
        self.reserved_slugs = RESERVED_SLUGS | {s.strip("/").lower() for s in reserved_slugs if s.strip("/")}

    # ------------------------------------------------------------------ #
    # Shared pieces
    # ------------------------------------------------------------------ #

    @contextlib.asynccontextmanager
    async def _transaction(self, tenant: TenantRef | None) -> AsyncIterator[UnitOfWork]:
        """A unit of work entered inside ``tenant`` (so row-level security sees it from BEGIN)."""
        with _scope(tenant):
            async with self.database.transaction() as uow:
                yield uow

    async def _lock_tenant(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        """Serialise membership changes of one tenant for the rest of the transaction."""
        await lock_tenant(session, tenant_id, dialect=self.database.dialect)

    async def _admins_besides(self, session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID) -> int:
        count = await session.scalar(
            select(func.count()).where(
                Membership.tenant_id == tenant_id, Membership.role == ADMIN, Membership.user_id != user_id
            )
        )
        return int(count or 0)

    async def _grantable(self, session: AsyncSession, tenant_id: uuid.UUID, role: str) -> frozenset[str]:
        """What granting ``role`` gives: 403 for SUPER_ADMIN, 422 for an unknown role."""
        if role == SUPER_ADMIN:
            raise PermissionDeniedError("SUPER_ADMIN is granted from the command line only.")
        if role not in BUILTIN_ROLES and await session.get(Role, (tenant_id, role)) is None:
            raise ValidationError([{"loc": ["body", "role"], "msg": "unknown role", "type": "value_error"}])
        return await self.roles.permissions(tenant_id, role)

    @staticmethod
    def _within(held: frozenset[str] | None, wanted: frozenset[str]) -> None:
        if held is not None and not wanted <= held:
            raise PermissionDeniedError("You cannot grant permissions you do not hold.")

    def _membership_changed(
        self,
        uow: UnitOfWork,
        action: str,
        tenant_id: uuid.UUID,
        user_id: uuid.UUID,
        role: str | None,
        *,
        actor_id: uuid.UUID | None,
        data: dict[str, Any] | None = None,
        end_sessions: bool = False,
    ) -> None:
        """Queue a membership change's side effects until after the commit."""

        async def effects() -> None:
            await self.directory.membership_changed(tenant_id, user_id)
            if end_sessions:
                await self.sessions.end_member_sessions(user_id, tenant_id, reason="membership_removed")
            await self.events.emit(
                "on_membership_changed",
                tenant_id=str(tenant_id),
                user_id=str(user_id),
                role=role,
                actor_id=str(actor_id) if actor_id else None,
            )
            self.events.audit(action, tenant_id=tenant_id, actor_id=actor_id, target=str(user_id), data=data)

        uow.after_commit(effects)

    def _tenant_created(self, uow: UnitOfWork, ref: TenantRef, owner_id: uuid.UUID | None, via: str) -> None:
        async def effects() -> None:
            await self.directory.tenant_changed(ref.id, ref.slug)  # forget a cached "no such slug"
            await self.events.emit(
                "on_tenant_created", tenant=ref, owner_id=str(owner_id) if owner_id else None
            )
            self.events.audit("tenant.created", tenant_id=ref.id, actor_id=owner_id, data={"via": via})

        uow.after_commit(effects)
