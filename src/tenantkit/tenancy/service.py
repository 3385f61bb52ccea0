"""``TenancyService``: the one owner of tenant creation and of every membership change.

Whoever asks (sign-up, the operator commands, invitations, the members API,
later SSO and SCIM) goes through it, so each rule lives here once:

- a tenant created by a user never gets a slug the platform uses;
- an invitation dies when it is revoked, used or expired, or when its inviter
  no longer holds ``users.invite`` and every permission of the invited role;
- a tenant keeps at least one ADMIN: every membership change locks the
  tenant's row first (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite the
  first write takes the database's write lock) and counts inside that
  transaction, so concurrent demotions and removals cannot race past the rule;
- side effects (cache invalidation, ending the removed member's sessions, the
  ``on_membership_changed`` / ``on_tenant_created`` hooks, the audit row) run
  only after the change has committed.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tenantkit.context import TenantRef
from tenantkit.db.base import utcnow
from tenantkit.db.engine import UnitOfWork
from tenantkit.db.models import Membership, Tenant, User
from tenantkit.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    TenantForbiddenError,
    TenantNotFoundError,
)
from tenantkit.normalize import normalize_slug, slugify
from tenantkit.rbac.roles import ADMIN, USER
from tenantkit.tenancy.core import PLATFORM_SLUG, RESERVED_SLUGS, SessionEnder
from tenantkit.tenancy.directory import tenant_ref
from tenantkit.tenancy.invitations import InvitationRules, invitation_scope

__all__ = ["PLATFORM_SLUG", "RESERVED_SLUGS", "Member", "SessionEnder", "TenancyService"]


@dataclass(frozen=True, slots=True)
class Member:
    """A member of a tenant."""

    user_id: uuid.UUID
    email: str
    role: str
    joined_at: datetime


class TenancyService(InvitationRules):
    """Tenants, memberships and invitations. Methods raise :mod:`tenantkit.errors` exceptions.

    Args:
        database: Where tenants, memberships and invitations live.
        directory: The cached tenant/membership lookups to invalidate after a change.
        roles: What each role grants.
        events: Hooks and audit rows.
        sessions: Ends a removed member's sessions (:class:`SessionEnder`).
        send_mail: Delivers invitation emails.
        invitation_ttl: Seconds an invitation stays valid.
        reserved_slugs: Slugs added to :data:`RESERVED_SLUGS` (the app's path prefix...).
    """

    # ------------------------------------------------------------------ #
    # Tenants
    # ------------------------------------------------------------------ #

    async def _free_slug(self, session: AsyncSession, name: str) -> str:
        """A slug for a tenant a user founds: never a reserved one, never a taken one."""
        base = slugify(name)
        slug = base
        while slug in self.reserved_slugs or (
            await session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is not None
        ):
            slug = f"{base[:56]}-{secrets.token_hex(3)}"
        return slug

    async def create_tenant(
        self,
        name: str,
        slug: str | None = None,
        *,
        owner_id: uuid.UUID | None = None,
        open_signup: bool = False,
        via: str,
    ) -> TenantRef:
        """An operator creates a tenant (reserved slugs allowed); 409 when the slug is taken.

        With ``owner_id`` that user becomes its first ADMIN.
        """
        final = normalize_slug(slug) if slug else slugify(name)
        async with self.database.transaction() as uow:
            if await uow.session.scalar(select(Tenant.id).where(Tenant.slug == final)) is not None:
                raise ConflictError(f"tenant slug {final!r} is taken")
            tenant = Tenant(name=name, slug=final, open_signup=open_signup)
            uow.session.add(tenant)
            await uow.session.flush()
            ref = tenant_ref(tenant)
            self._tenant_created(uow, ref, owner_id, via)
            if owner_id is not None:
                uow.session.add(Membership(tenant_id=ref.id, user_id=owner_id, role=ADMIN))
                self._membership_changed(
                    uow,
                    "membership.added",
                    ref.id,
                    owner_id,
                    ADMIN,
                    actor_id=None,
                    data={"role": ADMIN, "via": via},
                )
        return ref

    async def list_tenants(self) -> list[Tenant]:
        """Every tenant, oldest first (platform operators)."""
        async with self.database.session() as session:
            return list((await session.scalars(select(Tenant).order_by(Tenant.created_at))).all())

    async def memberships_of(self, user_id: uuid.UUID) -> list[tuple[Tenant, str]]:
        """The tenants ``user_id`` belongs to with their role in each, most recently used first."""
        async with self.database.session() as session:
            rows = await session.execute(
                select(Tenant, Membership.role)
                .join(Membership, Membership.tenant_id == Tenant.id)
                .where(Membership.user_id == user_id)
                .order_by(Membership.last_used_at.desc(), Tenant.slug)
            )
            return [(tenant, role) for tenant, role in rows.all()]

    async def is_operator(self, user_id: uuid.UUID) -> bool:
        """Whether ``user_id`` is a platform operator."""
        async with self.database.session() as session:
            return bool(await session.scalar(select(User.is_superadmin).where(User.id == user_id)))

    async def update_tenant(
        self, tenant_id: uuid.UUID, *, actor_id: uuid.UUID | None, **changes: Any
    ) -> Tenant:
        """Change a tenant's ``status``, ``open_signup``, ``name`` or ``require_mfa`` (404 when unknown)."""
        allowed = {
            k: v
            for k, v in changes.items()
            if k in ("status", "open_signup", "name", "require_mfa") and v is not None
        }
        async with self.database.transaction() as uow:
            tenant = await uow.session.get(Tenant, tenant_id, with_for_update=True)
            if tenant is None:
                raise NotFoundError("No such tenant.")
            for field, value in allowed.items():
                setattr(tenant, field, value)
            slug = tenant.slug

            async def effects() -> None:
                await self.directory.tenant_changed(tenant_id, slug)
                self.events.audit(
                    "admin.tenant_updated", tenant_id=tenant_id, actor_id=actor_id, data=allowed
                )

            uow.after_commit(effects)
        return tenant

    async def set_tenant_status(
        self, tenant_id: uuid.UUID, status: str, *, actor_id: uuid.UUID | None
    ) -> Tenant:
        """Suspend (``"suspended"``) or reactivate (``"active"``) a tenant."""
        if status not in ("active", "suspended"):
            raise ValueError(f"unknown tenant status {status!r}")
        return await self.update_tenant(tenant_id, actor_id=actor_id, status=status)

    # ------------------------------------------------------------------ #
    # Sign-up (inside the caller's unit of work)
    # ------------------------------------------------------------------ #

    @staticmethod
    def sign_up_scope(
        *, tenant: TenantRef | None = None, invite_token: str | None = None
    ) -> TenantRef | None:
        """The tenant to enter before opening the sign-up's unit of work (``None``: any).

        Open the transaction inside ``tenant_context(...)`` of this value so tenant
        scoping and row-level security see the invited tenant from its first statement.
        """
        if invite_token is not None:
            return invitation_scope(invite_token) or tenant
        return tenant

    async def sign_up(
        self,
        uow: UnitOfWork,
        user_id: uuid.UUID,
        email: str,
        *,
        tenant_name: str | None = None,
        tenant: TenantRef | None = None,
        invite_token: str | None = None,
    ) -> tuple[TenantRef, str]:
        """A new account's first membership, in the caller's transaction.

        With ``invite_token`` the user joins the inviting tenant with the invited
        role; with ``tenant_name`` they found a tenant and become its ADMIN; with
        ``tenant`` alone they join it as USER when it allows open sign-up.
        """
        session = uow.session
        if invite_token is not None:
            found, role = await self._consume(session, invite_token, email, tenant)
            action, via = "membership.joined", "invitation"
            # The invitation was mailed to this address: it is verified.
            await session.execute(
                update(User)
                .where(User.id == user_id)
                .values(email_verified_at=utcnow())
                .execution_options(synchronize_session=False)
            )
        elif tenant_name is not None:
            found = Tenant(name=tenant_name, slug=await self._free_slug(session, tenant_name))
            session.add(found)
            await session.flush()
            role, action, via = ADMIN, "membership.added", "sign_up"
            self._tenant_created(uow, tenant_ref(found), user_id, via)
        else:
            if tenant is None:
                raise TenantNotFoundError("Name a tenant to join.")
            joined = await session.get(Tenant, tenant.id)
            if joined is None:
                raise TenantNotFoundError("Unknown tenant.")
            found = joined
            if not found.open_signup:
                raise PermissionDeniedError("This tenant does not allow open sign-up.")
            role, action, via = USER, "membership.joined", "open_signup"
        if found.status != "active":
            raise TenantForbiddenError("This tenant is suspended.")
        session.add(Membership(tenant_id=found.id, user_id=user_id, role=role))
        self._membership_changed(
            uow, action, found.id, user_id, role, actor_id=user_id, data={"role": role, "via": via}
        )
        return tenant_ref(found), role

    # ------------------------------------------------------------------ #
    # Members
    # ------------------------------------------------------------------ #

    async def list_members(self, tenant: TenantRef) -> list[Member]:
        """The tenant's members by email (a read replica may answer)."""
        async with self.database.read_session() as session:
            rows = await session.execute(
                select(User.id, User.email, Membership.role, Membership.created_at)
                .join(Membership, Membership.user_id == User.id)
                .where(Membership.tenant_id == tenant.id)
                .order_by(User.email)
            )
            return [Member(*row) for row in rows.all()]

    async def change_role(
        self,
        tenant: TenantRef,
        user_id: uuid.UUID,
        role: str,
        *,
        actor_id: uuid.UUID | None,
        actor_permissions: frozenset[str] | None,
    ) -> str:
        """Give a member another role; it takes effect on their next request.

        403 for one's own role, a member holding more than the actor, or a role
        granting more; 404 for a non-member; 409 when it would leave no ADMIN.
        """
        async with self._transaction(tenant) as uow:
            await self._lock_tenant(uow.session, tenant.id)
            row = await uow.session.get(Membership, (tenant.id, user_id), with_for_update=True)
            if row is None:
                raise NotFoundError("No such member.")
            if user_id == actor_id:
                raise PermissionDeniedError("You cannot change your own role.")
            self._within(actor_permissions, await self.roles.permissions(tenant.id, row.role))
            self._within(actor_permissions, await self._grantable(uow.session, tenant.id, role))
            if (
                row.role == ADMIN
                and role != ADMIN
                and await self._admins_besides(uow.session, tenant.id, user_id) == 0
            ):
                raise ConflictError("A tenant keeps at least one ADMIN.")
            previous, row.role = row.role, role
            self._membership_changed(
                uow,
                "membership.role_changed",
                tenant.id,
                user_id,
                role,
                actor_id=actor_id,
                data={"from": previous, "to": role},
            )
        return role

    async def remove_member(
        self,
        tenant: TenantRef,
        user_id: uuid.UUID,
        *,
        actor_id: uuid.UUID | None,
        actor_permissions: frozenset[str] | None = None,
    ) -> None:
        """Remove a membership; that member's sessions in this tenant end after the commit.

        404 for a non-member, 403 for a member holding more than the actor, 409 for the last ADMIN.
        """
        async with self._transaction(tenant) as uow:
            await self._lock_tenant(uow.session, tenant.id)
            row = await uow.session.get(Membership, (tenant.id, user_id), with_for_update=True)
            if row is None:
                raise NotFoundError("No such member.")
            self._within(actor_permissions, await self.roles.permissions(tenant.id, row.role))
            if row.role == ADMIN and await self._admins_besides(uow.session, tenant.id, user_id) == 0:
                raise ConflictError("A tenant keeps at least one ADMIN.")
            await uow.session.delete(row)
            self._membership_changed(
                uow, "membership.removed", tenant.id, user_id, None, actor_id=actor_id, end_sessions=True
            )

    async def add_member(
        self, tenant: TenantRef, user_id: uuid.UUID, role: str, *, via: str, actor_id: uuid.UUID | None = None
    ) -> None:
        """An operator path (CLI, later SSO/SCIM) gives ``user_id`` ``role`` in ``tenant``.

        An existing membership takes the new role (the last-ADMIN rule still holds).
        """
        async with self._transaction(tenant) as uow:
            await self._lock_tenant(uow.session, tenant.id)
            row = await uow.session.get(Membership, (tenant.id, user_id), with_for_update=True)
            if row is None:
                uow.session.add(Membership(tenant_id=tenant.id, user_id=user_id, role=role))
                action, data = "membership.added", {"role": role, "via": via}
            else:
                if (
                    row.role == ADMIN
                    and role != ADMIN
                    and not await self._admins_besides(uow.session, tenant.id, user_id)
                ):
                    raise ConflictError("A tenant keeps at least one ADMIN.")
                action, data = "membership.role_changed", {"from": row.role, "to": role, "via": via}
                row.role = role
            self._membership_changed(uow, action, tenant.id, user_id, role, actor_id=actor_id, data=data)
