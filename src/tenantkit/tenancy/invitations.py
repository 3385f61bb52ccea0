"""Invitation tokens and the rules that keep an invitation alive.

A token is ``tki_<tenant id hex>_<secret>``: the tenant id lets the acceptor
enter the right tenant before any query (tenant scoping and row-level
security); only the token's SHA-256 digest is stored.

An invitation is alive while it is neither accepted, revoked nor expired, and
its inviter (when it has one) still holds a membership in that tenant whose
permissions include ``users.invite`` and every permission of the invited role.
Everything else makes it dead: accepting a dead invitation answers 404.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tenantkit.context import TenantRef, tenant_context
from tenantkit.db.base import utcnow
from tenantkit.db.models import Invitation, Membership, Tenant, User
from tenantkit.errors import ConflictError, NotFoundError, PermissionDeniedError, TenantForbiddenError
from tenantkit.mail import Mail
from tenantkit.rbac.roles import SUPER_ADMIN, RoleBook
from tenantkit.tenancy.core import TenancyCore
from tenantkit.tenancy.directory import tenant_ref

__all__ = [
    "DEAD_INVITATION",
    "INVITE_PERMISSION",
    "INVITE_PREFIX",
    "InvitationRules",
    "invitation_digest",
    "invitation_tenant",
    "inviter_allows",
    "is_pending",
    "new_invite_token",
]

INVITE_PREFIX = "tki_"
#: The permission an inviter must keep for their invitations to stay alive.
INVITE_PERMISSION = "users.invite"
DEAD_INVITATION = "Unknown, expired, revoked or used invitation."


def new_invite_token(tenant_id: uuid.UUID) -> str:
    """A fresh invitation token for ``tenant_id``."""
    return f"{INVITE_PREFIX}{tenant_id.hex}_{secrets.token_urlsafe(32)}"


def invitation_digest(token: str) -> bytes:
    """What is stored in place of the token."""
    return hashlib.sha256(token.encode()).digest()


def invitation_tenant(token: str) -> uuid.UUID | None:
    """The tenant an invitation token belongs to (parsed, not trusted), or ``None``."""
    if not token.startswith(INVITE_PREFIX):
        return None
    tenant_hex, _, secret = token[len(INVITE_PREFIX) :].partition("_")
    try:
        return uuid.UUID(hex=tenant_hex) if len(secret) >= 32 else None
    except ValueError:
        return None


def is_pending(invitation: Invitation, now: datetime) -> bool:
    """Neither accepted, revoked nor expired (the inviter's rights are checked apart)."""
    return invitation.accepted_at is None and invitation.revoked_at is None and invitation.expires_at > now


async def inviter_allows(
    session: AsyncSession, roles: RoleBook, invitation: Invitation, *, cache: dict[str, bool] | None = None
) -> bool:
    """Whether the inviter may still grant the invited role in the invitation's tenant.

    ``invited_by`` ``None`` marks an invitation issued by the platform (an operator
    command): only the role's own rule applies. A SUPER_ADMIN role is never granted.
    """
    if invitation.role == SUPER_ADMIN:
        return False
    if invitation.invited_by is None:
        return True
    key = f"{invitation.invited_by}:{invitation.role}"
    if cache is not None and key in cache:
        return cache[key]
    inviter_role = await session.scalar(
        select(Membership.role).where(
            Membership.tenant_id == invitation.tenant_id, Membership.user_id == invitation.invited_by
        )
    )
    allowed = False
    if inviter_role is not None:
        held = await roles.permissions(invitation.tenant_id, inviter_role)
        wanted = await roles.permissions(invitation.tenant_id, invitation.role)
        allowed = INVITE_PERMISSION in held and wanted <= held
    if cache is not None:
        cache[key] = allowed
    return allowed


def invitation_scope(token: str) -> TenantRef | None:
    """The tenant to enter before a transaction that spends ``token`` (``None`` when malformed)."""
    tenant_id = invitation_tenant(token)
    return TenantRef(id=tenant_id, slug="") if tenant_id is not None else None


class InvitationRules(TenancyCore):
    """Invite, list, revoke and accept (part of :class:`~tenantkit.tenancy.service.TenancyService`)."""

    async def invite(
        self,
        tenant: TenantRef,
        *,
        email: str,
        role: str,
        inviter_id: uuid.UUID | None,
        inviter_permissions: frozenset[str] | None,
    ) -> tuple[Invitation, str]:
        """Create a single-use invitation, mail its token; returns it and the token.

        ``inviter_permissions`` ``None`` skips the grant check (operator paths).
        Raises 403 for SUPER_ADMIN or a role granting more than the inviter holds.
        """
        token = new_invite_token(tenant.id)
        async with self._transaction(tenant) as uow:
            self._within(inviter_permissions, await self._grantable(uow.session, tenant.id, role))
            invitation = Invitation(
                tenant_id=tenant.id,
                email=email,
                role=role,
                digest=invitation_digest(token),
                invited_by=inviter_id,
                expires_at=utcnow() + timedelta(seconds=self.invitation_ttl),
            )
            uow.session.add(invitation)
        await self.send_mail(
            Mail(
                to=email,
                subject=f"You are invited to {tenant.name or tenant.slug}",
                body=(
                    f"You have been invited to join {tenant.name or tenant.slug} as {role}.\n"
                    f"Invitation token: {token}\n"
                    f"It expires at {invitation.expires_at.isoformat()} and works once."
                ),
                kind="invitation",
            )
        )
        self.events.audit(
            "invitation.created",
            tenant_id=tenant.id,
            actor_id=inviter_id,
            target=email,
            data={"role": role, "invitation_id": str(invitation.id)},
        )
        return invitation, token

    async def list_invitations(self, tenant: TenantRef) -> list[Invitation]:
        """The tenant's live invitations, newest first (tokens are never stored)."""
        now = utcnow()
        with tenant_context(tenant):
            async with self.database.session() as session:
                rows = (
                    await session.scalars(
                        select(Invitation)
                        .where(
                            Invitation.tenant_id == tenant.id,
                            Invitation.accepted_at.is_(None),
                            Invitation.revoked_at.is_(None),
                            Invitation.expires_at > now,
                        )
                        .order_by(Invitation.created_at.desc(), Invitation.id)
                    )
                ).all()
                cache: dict[str, bool] = {}
                return [row for row in rows if await inviter_allows(session, self.roles, row, cache=cache)]

    async def revoke_invitation(
        self, tenant: TenantRef, invitation_id: uuid.UUID, *, actor_id: uuid.UUID | None
    ) -> None:
        """Withdraw a pending invitation: its token is dead at once (404 when not pending)."""
        now = utcnow()
        async with self._transaction(tenant) as uow:
            revoked = await uow.session.execute(
                update(Invitation)
                .where(
                    Invitation.tenant_id == tenant.id,
                    Invitation.id == invitation_id,
                    Invitation.accepted_at.is_(None),
                    Invitation.revoked_at.is_(None),
                    Invitation.expires_at > now,
                )
                .values(revoked_at=now)
                .execution_options(synchronize_session=False)
            )
            if revoked.rowcount != 1:  # type: ignore[attr-defined]
                raise NotFoundError("No such pending invitation.")
            uow.after_commit(
                self._audit_later("invitation.revoked", tenant.id, actor_id, target=str(invitation_id))
            )

    def _audit_later(
        self, action: str, tenant_id: uuid.UUID, actor_id: uuid.UUID | None, *, target: str
    ) -> Callable[[], Awaitable[None]]:
        async def write() -> None:
            self.events.audit(action, tenant_id=tenant_id, actor_id=actor_id, target=target)

        return write

    async def _consume(
        self, session: AsyncSession, token: str, email: str, expected: TenantRef | None
    ) -> tuple[Tenant, str]:
        """Spend a live invitation for ``email`` under the tenant's lock; 404 when dead."""
        tenant_id = invitation_tenant(token)
        if tenant_id is None or (expected is not None and expected.id != tenant_id):
            raise NotFoundError(DEAD_INVITATION)
        with tenant_context(TenantRef(id=tenant_id, slug="")):
            tenant = await session.get(Tenant, tenant_id)
            if tenant is None:
                raise NotFoundError(DEAD_INVITATION)
            await self._lock_tenant(session, tenant_id)  # the inviter's membership cannot change now
            invitation = await session.scalar(
                select(Invitation)
                .where(Invitation.tenant_id == tenant_id, Invitation.digest == invitation_digest(token))
                .with_for_update()
            )
            if invitation is None or not is_pending(invitation, utcnow()):
                raise NotFoundError(DEAD_INVITATION)
            if invitation.email != email:
                raise PermissionDeniedError("This invitation was issued to another email address.")
            if not await inviter_allows(session, self.roles, invitation):
                raise NotFoundError(DEAD_INVITATION)
            claimed = await session.execute(
                update(Invitation)
                .where(
                    Invitation.tenant_id == tenant_id,
                    Invitation.id == invitation.id,
                    Invitation.accepted_at.is_(None),
                    Invitation.revoked_at.is_(None),
                )
                .values(accepted_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                raise NotFoundError(DEAD_INVITATION)
        return tenant, invitation.role

    async def accept_invitation(self, user_id: uuid.UUID, token: str) -> tuple[TenantRef, str]:
        """An existing user joins the inviting tenant with the invited role (404 when dead)."""
        async with self._transaction(invitation_scope(token)) as uow:
            email = await uow.session.scalar(select(User.email).where(User.id == user_id))
            if email is None:
                raise NotFoundError(DEAD_INVITATION)
            tenant, role = await self._consume(uow.session, token, email, None)
            # The invitation was mailed to this address: it is verified now.
            await uow.session.execute(
                update(User)
                .where(User.id == user_id, User.email_verified_at.is_(None))
                .values(email_verified_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if await uow.session.get(Membership, (tenant.id, user_id)) is not None:
                raise ConflictError("You are already a member of this tenant.")
            if tenant.status != "active":
                raise TenantForbiddenError("This tenant is suspended.")
            uow.session.add(Membership(tenant_id=tenant.id, user_id=user_id, role=role))
            self._membership_changed(
                uow, "membership.joined", tenant.id, user_id, role, actor_id=user_id, data={"role": role}
            )
            ref = tenant_ref(tenant)
        return ref, role
