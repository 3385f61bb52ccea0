"""Audited impersonation: act as a user for a while, with a reason, never over an equal or higher role.

* Who: a platform operator (SUPER_ADMIN), or in a tenant a holder of
  ``users.impersonate`` over a member of lower role (custom roles rank below
  ADMIN, with USER). Plugins may veto through ``tenantkit_authorize_impersonation``.
* What: an access token of the user, bound to one tenant, with the ``act``
  claim (RFC 8693) naming the real actor, at most 60 minutes, no refresh
  token, optionally read-only. It is a session of its own: the user sees it in
  ``GET /auth/sessions`` (``impersonated_by``) and can end it like any device.
* Every audit row written under it names both (:class:`tenantkit.events.Events`).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from tenantkit.auth.tokens import AccessTokens
from tenantkit.context import Principal, TenantRef
from tenantkit.db.base import utcnow
from tenantkit.db.engine import Database
from tenantkit.db.models import AuthSession, Membership, User
from tenantkit.errors import NotFoundError, PermissionDeniedError
from tenantkit.events import Events
from tenantkit.rbac.roles import ADMIN, SUPER_ADMIN

__all__ = ["MAX_MINUTES", "Impersonation", "impersonation_rank"]

MAX_MINUTES = 60


def impersonation_rank(role: str) -> int:
    """SUPER_ADMIN 3, ADMIN 2, anything else (USER, custom roles) 1."""
    return {SUPER_ADMIN: 3, ADMIN: 2}.get(role, 1)


class Impersonation:
    """Issues impersonation tokens.

    Args:
        database: Users, memberships and sessions.
        tokens: Signs the tokens.
        events: The veto hook, hooks and audit rows.
    """

    def __init__(self, *, database: Database, tokens: AccessTokens, events: Events) -> None:
        self.db = database
        self.tokens = tokens
        self.events = events

    async def start(
        self,
        actor: Principal,
        *,
        actor_role: str,
        actor_permissions: frozenset[str],
        tenant: TenantRef,
        user_id: uuid.UUID,
        reason: str,
        read_only: bool,
        minutes: int,
        ip: str | None,
        user_agent: str,
    ) -> tuple[str, int]:
        """An access token of ``user_id`` acted on by ``actor``; returns it and its lifetime.

        Raises:
            PermissionDeniedError: not allowed (no permission, an equal or higher role, a veto).
            NotFoundError: the user is not a member of the tenant (or does not exist).
        """
        if actor.api_key is not None or actor.impersonator_id is not None:
            raise PermissionDeniedError("Impersonation starts from a user's own session.")
        if user_id == actor.user_id:
            raise PermissionDeniedError("You cannot impersonate yourself.")
        minutes = max(1, min(minutes, MAX_MINUTES))
        async with self.db.session() as session:
            operator = bool(await session.scalar(select(User.is_superadmin).where(User.id == actor.user_id)))
            target = await session.get(User, user_id)
            if target is None or not target.is_active:
                raise NotFoundError("No such user.")
            if operator:
                # A platform operator may enter the user's current tenant, or their latest membership.
                query = select(Membership).where(Membership.user_id == user_id)
                here = await session.get(Membership, (tenant.id, user_id))
                membership = here or await session.scalar(
                    query.order_by(Membership.last_used_at.desc()).limit(1)
                )
                acting_rank = impersonation_rank(SUPER_ADMIN)
            else:
                if "users.impersonate" not in actor_permissions:
                    raise PermissionDeniedError("You do not have permission to do this.")
                membership = await session.get(Membership, (tenant.id, user_id))
                acting_rank = impersonation_rank(actor_role)
            if membership is None:
                raise NotFoundError("No such member.")
            if target.is_superadmin or impersonation_rank(membership.role) >= acting_rank:
                raise PermissionDeniedError("You can only impersonate members of a lower role.")
            tenant_id, role = membership.tenant_id, membership.role
        verdict = self.events.hook.tenantkit_authorize_impersonation(
            actor_id=str(actor.user_id),
            user_id=str(user_id),
            tenant_id=str(tenant_id),
            reason=reason,
            read_only=read_only,
        )
        if verdict is False:
            raise PermissionDeniedError("A policy refused this impersonation.")
        now = utcnow()
        async with self.db.session() as session, session.begin():
            auth_session = AuthSession(
                user_id=user_id,
                tenant_id=tenant_id,
                user_agent=user_agent[:512],
                ip=ip,
                created_at=now,
                last_used_at=now,
                expires_at=now + timedelta(minutes=minutes),
                impersonator_id=actor.user_id,
                impersonation_reason=reason,
                read_only=read_only,
            )
            session.add(auth_session)
            await session.flush()
            session_id = auth_session.id
        token, lifetime = self.tokens.issue(
            user_id=user_id,
            tenant_id=tenant_id,
            session_id=session_id,
            role=role,
            ttl=minutes * 60,
            actor_id=actor.user_id,
            read_only=read_only,
        )
        data: dict[str, object] = {"user_id": str(user_id), "session_id": str(session_id), "reason": reason}
        data |= {"read_only": read_only, "minutes": minutes}
        for audited_tenant in {tenant_id, actor.tenant_id}:  # the operator's own tenant keeps a trace too
            self.events.audit(
                "impersonation.started",
                tenant_id=audited_tenant,
                actor_id=actor.user_id,
                target=str(user_id),
                data=data,
            )
        return token, lifetime
