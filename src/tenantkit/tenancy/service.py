"""INTERIM (replaced by WP-B's TenancyService at merge)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tenantkit import digests as rt
from tenantkit.context import TenantRef
from tenantkit.db.base import utcnow
from tenantkit.db.engine import Database, UnitOfWork
from tenantkit.db.models import Invitation, Membership, Tenant, User
from tenantkit.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    TenantForbiddenError,
    TenantNotFoundError,
)
from tenantkit.events import Events
from tenantkit.mail import Mail
from tenantkit.normalize import slugify
from tenantkit.rbac.roles import RoleBook
from tenantkit.tenancy.directory import TenantDirectory, tenant_ref

INVITE_PREFIX = "tki_"


class SessionEnder(Protocol):
    async def end_member_sessions(self, user_id: uuid.UUID, tenant_id: uuid.UUID, *, reason: str) -> None: ...


def _invite_token(tenant_id: uuid.UUID) -> str:
    return f"{INVITE_PREFIX}{tenant_id.hex}_{secrets.token_urlsafe(32)}"


def invitation_tenant(token: str) -> uuid.UUID | None:
    if not token.startswith(INVITE_PREFIX):
        return None
    tenant_hex, _, secret = token[len(INVITE_PREFIX) :].partition("_")
    try:
        return uuid.UUID(hex=tenant_hex) if len(secret) >= 32 else None
    except ValueError:
        return None


class TenancyService:
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
    ) -> None:
        self.db = database
        self.directory = directory
        self.roles = roles
        self.events = events
        self.sessions = sessions
        self.send_mail = send_mail
        self.invitation_ttl = invitation_ttl

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
        session = uow.session
        if invite_token is not None:
            target, role = await self._consume_invitation(session, invite_token, email, tenant)
        elif tenant_name is not None:
            target, role = await self._create_tenant(session, tenant_name), "ADMIN"
        else:
            assert tenant is not None
            target = await self._load_tenant(session, tenant.id)
            if not target.open_signup:
                raise PermissionDeniedError("This tenant does not allow open sign-up.")
            role = "USER"
        if target.status != "active":
            raise TenantForbiddenError("This tenant is suspended.")
        session.add(Membership(tenant_id=target.id, user_id=user_id, role=role))
        ref = tenant_ref(target)

        async def after() -> None:
            if tenant_name is not None:
                await self.events.emit("on_tenant_created", tenant=ref, owner_id=str(user_id))
            await self.directory.membership_changed(ref.id, user_id)

        uow.after_commit(after)
        return ref, role

    async def _create_tenant(self, session: AsyncSession, name: str) -> Tenant:
        base = slugify(name)
        slug = base
        while await session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is not None:
            slug = f"{base[:56]}-{secrets.token_hex(3)}"
        tenant = Tenant(name=name, slug=slug)
        session.add(tenant)
        await session.flush()
        return tenant

    async def _load_tenant(self, session: AsyncSession, tenant_id: uuid.UUID) -> Tenant:
        tenant = await session.get(Tenant, tenant_id)
        if tenant is None:
            raise TenantNotFoundError("Unknown tenant.")
        return tenant

    async def _consume_invitation(
        self, session: AsyncSession, token: str, email: str, expected: TenantRef | None
    ) -> tuple[Tenant, str]:
        tenant_id = invitation_tenant(token)
        if tenant_id is None or (expected is not None and expected.id != tenant_id):
            raise NotFoundError("Unknown, expired or used invitation.")
        invitation = await session.scalar(
            select(Invitation)
            .where(Invitation.tenant_id == tenant_id, Invitation.digest == rt.digest(token))
            .with_for_update()
        )
        if invitation is None or invitation.accepted_at is not None or invitation.expires_at <= utcnow():
            raise NotFoundError("Unknown, expired or used invitation.")
        if invitation.email != email:
            raise PermissionDeniedError("This invitation was issued to another email address.")
        claimed = await session.execute(
            update(Invitation)
            .where(
                Invitation.tenant_id == tenant_id,
                Invitation.id == invitation.id,
                Invitation.accepted_at.is_(None),
            )
            .values(accepted_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            raise NotFoundError("Unknown, expired or used invitation.")
        return await self._load_tenant(session, tenant_id), invitation.role

    async def create_invitation(
        self, tenant: TenantRef, *, email: str, role: str, invited_by: uuid.UUID | None
    ) -> tuple[Invitation, str]:
        token = _invite_token(tenant.id)
        async with self.db.session() as session, session.begin():
            invitation = Invitation(
                tenant_id=tenant.id,
                email=email,
                role=role,
                digest=rt.digest(token),
                invited_by=invited_by,
                expires_at=utcnow() + timedelta(seconds=self.invitation_ttl),
            )
            session.add(invitation)
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
            "invitation.created", tenant_id=tenant.id, actor_id=invited_by, target=email, data={"role": role}
        )
        return invitation, token

    async def accept_invitation(self, user_id: uuid.UUID, token: str) -> tuple[TenantRef, str]:
        async with self.db.session() as session, session.begin():
            user = await session.get(User, user_id)
            if user is None:
                raise AuthenticationError("Unknown user.")
            tenant, role = await self._consume_invitation(session, token, user.email, None)
            existing = await session.get(Membership, (tenant.id, user_id))
            if existing is not None:
                raise ConflictError("You are already a member of this tenant.")
            session.add(Membership(tenant_id=tenant.id, user_id=user_id, role=role))
            ref = tenant_ref(tenant)
        await self.directory.membership_changed(ref.id, user_id)
        await self.events.emit(
            "on_membership_changed", tenant_id=str(ref.id), user_id=str(user_id), role=role, actor_id=None
        )
        self.events.audit("membership.joined", tenant_id=ref.id, actor_id=user_id, data={"role": role})
        return ref, role
