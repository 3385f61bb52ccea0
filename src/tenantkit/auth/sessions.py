"""Sessions: sign-in, refresh rotation with reuse detection, sign-out, devices, tenant switch.

A session is one device's refresh-token family. Signing in checks the
password under the account lockout and starts a session bound to one
membership; every refresh spends its token and mints the successor in one
race-free rotation (:mod:`tenantkit.auth.rotation`); presenting a spent token
outside the grace window revokes the whole family.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tenantkit.auth import refresh as rt
from tenantkit.auth.lockout import Lockout
from tenantkit.auth.mfa import Challenge, TwoFactor
from tenantkit.auth.passwords import PasswordHasher, is_usable_password
from tenantkit.auth.revocation import RevocationList
from tenantkit.auth.rotation import Rotation, as_utc
from tenantkit.auth.tokens import AccessTokens, TokenPair
from tenantkit.context import Principal, TenantRef
from tenantkit.db.base import utcnow
from tenantkit.db.engine import Database
from tenantkit.db.models import AuthSession, Membership, RefreshToken, Tenant, User
from tenantkit.errors import (
    AccountLockedError,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    SsoRequiredError,
    TenantForbiddenError,
    TenantNotFoundError,
)
from tenantkit.events import Events
from tenantkit.observability.metrics import Metrics
from tenantkit.settings import Settings

__all__ = ["GENERIC_LOGIN_FAILURE", "PasswordPolicy", "Sessions", "TokenPair"]

logger = logging.getLogger("tenantkit.auth")

GENERIC_LOGIN_FAILURE = "Invalid email or password."

#: ``(tenant_id, email) -> allowed``: whether a password may open a session in that tenant
#: (a tenant enforcing its single sign-on for the email's domain says no).
PasswordPolicy = Callable[[uuid.UUID, str], Awaitable[bool]]


class Sessions(Rotation):
    """Sign-in and the life of a session. Methods raise :mod:`tenantkit.errors` exceptions.

    Args:
        settings: Lifetimes, grace window, idle timeout.
        database: Where sessions and refresh tokens live.
        hasher: Checks passwords off the event loop.
        tokens: Issues access tokens.
        lockout: Per-account failure counting.
        revocations: Makes an ended session's access tokens fail at once, everywhere.
        events: Hooks and audit rows.
        metrics: Login, lockout and reuse counters.
        mfa: Second factors; sign-ins of enrolled users answer with a challenge.
        password_policy: Refuses password sign-in (and tenant switches) into a tenant
            that enforces its single sign-on for the user's domain (403 ``sso-required``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        database: Database,
        hasher: PasswordHasher,
        tokens: AccessTokens,
        lockout: Lockout,
        revocations: RevocationList,
        events: Events,
        metrics: Metrics,
        mfa: TwoFactor | None = None,
        password_policy: PasswordPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.db = database
        self.hasher = hasher
        self.tokens = tokens
        self.lockout = lockout
        self.revocations = revocations
        self.events = events
        self.metrics = metrics
        self.mfa = mfa
        self.password_policy = password_policy

    # ------------------------------------------------------------------ #
    # Password checks shared with accounts (one lockout for every check)
    # ------------------------------------------------------------------ #

    async def check_password(self, email: str, password: str, *, ip: str | None, reason: str) -> User:
        """Verify ``password`` for ``email`` under the lockout; the user, or 401/423.

        Every password check (sign-in, password change, re-authentication) goes
        through here, so all of them count toward the same lock. Failures are
        recorded in the platform's security log, never in a tenant's, and the
        record does not tell whether the email has an account.
        """
        self.hasher.ensure_capacity()  # a storm's refusal must not count against the account
        try:
            attempt = await self.lockout.begin(email)
        except AccountLockedError:
            await self.events.emit("on_login_failed", email=email, reason="locked", ip=ip)
            raise
        async with self.db.session() as session:
            user = await session.scalar(select(User).where(User.email == email))
        # No password (federated-only account): the dummy check, so timing tells nothing.
        usable = user is not None and user.is_active and is_usable_password(user.password_hash)
        stored = user.password_hash if usable and user is not None else None
        if await self.hasher.verify(password, stored):
            assert user is not None
            await self.lockout.succeeded(email)
            return user
        locked = await self.lockout.failed(email, attempt)
        self.metrics.login_failures.inc()
        await self.events.emit("on_login_failed", email=email, reason="invalid_credentials", ip=ip)
        self.events.security(f"{reason}.failed", ip=ip)
        if locked:
            self.metrics.lockouts.inc()
            until = utcnow().timestamp() + self.lockout.seconds
            await self.events.emit("on_lockout", email=email, until=until, ip=ip)
            self.events.security("login.locked", ip=ip)
        raise AuthenticationError(GENERIC_LOGIN_FAILURE)

    # ------------------------------------------------------------------ #
    # Sign-in
    # ------------------------------------------------------------------ #

    async def login(
        self, *, email: str, password: str, tenant: TenantRef | None, ip: str | None, user_agent: str
    ) -> TokenPair | Challenge:
        """Check credentials (with lockout) and start a session in a tenant.

        When the user has a second factor, the answer is a :class:`Challenge`
        instead: :meth:`complete_second_factor` finishes the sign-in.
        """
        user = await self.check_password(email, password, ip=ip, reason="login")
        if self.hasher.needs_rehash(user.password_hash):
            await self._rehash(user.id, password)
        enrolled = self.mfa is not None and await self.mfa.enrolled(user.id)
        if enrolled or self.password_policy is not None:
            async with self.db.session() as session:
                target, _ = await self._admit(session, user.id, email, tenant, ip)
            await self._check_password_policy(target.id, target.slug, user.id, email)
            tenant = TenantRef(id=target.id, slug=target.slug)  # the tenant checked, not a re-pick
            if enrolled and self.mfa is not None:
                return await self.mfa.begin(
                    {"user_id": str(user.id), "email": email, "tenant_id": str(target.id), "ip": ip}
                )
        return await self._sign_in(user.id, email, tenant, ip, user_agent)

    async def sign_in_federated(
        self,
        user_id: uuid.UUID,
        email: str,
        tenant: TenantRef | None,
        *,
        ip: str | None,
        user_agent: str,
    ) -> TokenPair | Challenge:
        """Start a session for a user an identity provider vouched for (no password step).

        The tenant rules are the password sign-in's (a membership, an active
        tenant), and so is the second factor: an enrolled user gets the same
        :class:`Challenge` as :meth:`login` returns.
        """
        if self.mfa is not None and await self.mfa.enrolled(user_id):
            async with self.db.session() as session:
                target, _ = await self._admit(session, user_id, email, tenant, ip)
            return await self.mfa.begin(
                {
                    "user_id": str(user_id),
                    "email": email,
                    "tenant_id": str(target.id),
                    "ip": ip,
                    "federated": True,
                }
            )
        return await self._sign_in(user_id, email, tenant, ip, user_agent)

    async def complete_second_factor(
        self, token: str, *, code: str | None, recovery_code: str | None, ip: str | None, user_agent: str
    ) -> TokenPair:
        """Answer a sign-in :class:`Challenge` with a TOTP or recovery code; the session starts.

        Raises:
            AuthenticationError: unknown, expired or spent challenge, or a wrong or used code.
        """
        if self.mfa is None:
            raise AuthenticationError("Unknown or expired sign-in challenge.")
        data = await self.mfa.answer(token, code=code, recovery_code=recovery_code)
        tenant = TenantRef(id=uuid.UUID(data["tenant_id"]), slug="")
        # SSO may have been enforced between the password and the code (a federated sign-in is SSO).
        if not data.get("federated"):
            await self._check_password_policy(tenant.id, "", uuid.UUID(data["user_id"]), data["email"])
        return await self._sign_in(uuid.UUID(data["user_id"]), data["email"], tenant, ip, user_agent)

    async def _check_password_policy(
        self, tenant_id: uuid.UUID, slug: str, user_id: uuid.UUID, email: str
    ) -> None:
        """403 ``sso-required`` when the tenant signs this user in through its own SSO only."""
        if self.password_policy is None or await self.password_policy(tenant_id, email):
            return
        self.events.audit("login.sso_required", tenant_id=tenant_id, actor_id=user_id)
        detail = "This tenant requires signing in through its single sign-on for your email domain."
        if slug:
            raise SsoRequiredError(detail, tenant=slug)
        raise SsoRequiredError(detail)

    async def _rehash(self, user_id: uuid.UUID, password: str) -> None:
        new_hash = await self.hasher.hash(password)
        async with self.db.session() as session, session.begin():
            await session.execute(
                update(User)
                .where(User.id == user_id)
                .values(password_hash=new_hash)
                .execution_options(synchronize_session=False)
            )

    async def _admit(
        self, session: AsyncSession, user_id: uuid.UUID, email: str, tenant: TenantRef | None, ip: str | None
    ) -> tuple[Tenant, str]:
        """The tenant a sign-in lands in and the role there (membership refreshed in ``session``), or 403."""
        membership = await self._pick_membership(session, user_id, tenant)
        if membership is None:
            await self.events.emit("on_login_failed", email=email, reason="not_member", ip=ip)
            raise PermissionDeniedError("You are not a member of this tenant.")
        target = await _load_tenant(session, membership.tenant_id)
        if target.status != "active":
            raise TenantForbiddenError("This tenant is suspended.")
        membership.last_used_at = utcnow()
        return target, membership.role

    async def _sign_in(
        self, user_id: uuid.UUID, email: str, tenant: TenantRef | None, ip: str | None, user_agent: str
    ) -> TokenPair:
        async with self.db.session() as session, session.begin():
            target, role = await self._admit(session, user_id, email, tenant, ip)
            await session.execute(
                update(User)
                .where(User.id == user_id)
                .values(last_login_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            pair = await self._start_session(session, user_id, target.id, role, ip, user_agent)
        self.metrics.logins.inc()
        await self.events.emit(
            "on_login", user_id=str(user_id), tenant_id=str(target.id), session_id=str(pair.session_id), ip=ip
        )
        self.events.audit("login.succeeded", tenant_id=target.id, actor_id=user_id, ip=ip)
        return pair

    async def switch_tenant(
        self, principal: Principal, tenant: TenantRef, *, ip: str | None, user_agent: str
    ) -> TokenPair:
        """Start a session bound to another of the user's memberships."""
        if tenant.status != "active":
            raise TenantForbiddenError("This tenant is suspended.")
        async with self.db.session() as session, session.begin():
            membership = await session.get(Membership, (tenant.id, principal.user_id))
            if membership is None:
                raise PermissionDeniedError("You are not a member of this tenant.")
            if self.password_policy is not None:
                # A session does not record how it began: entering a tenant that enforces
                # its SSO for the user's domain always goes through that SSO.
                email = await session.scalar(select(User.email).where(User.id == principal.user_id))
                await self._check_password_policy(tenant.id, tenant.slug, principal.user_id, email or "")
            membership.last_used_at = utcnow()
            pair = await self._start_session(
                session, principal.user_id, tenant.id, membership.role, ip, user_agent
            )
        self.events.audit("tenant.switched", tenant_id=tenant.id, actor_id=principal.user_id, ip=ip)
        return pair

    async def _pick_membership(
        self, session: AsyncSession, user_id: uuid.UUID, tenant: TenantRef | None
    ) -> Membership | None:
        query = select(Membership).where(Membership.user_id == user_id)
        if tenant is not None:
            query = query.where(Membership.tenant_id == tenant.id)
        query = query.order_by(Membership.last_used_at.desc()).limit(1)
        return await session.scalar(query)

    def _claims(self, user_id: uuid.UUID, tenant_id: uuid.UUID, role: str) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        for result in self.events.hook.tenantkit_access_token_claims(
            user_id=str(user_id), tenant_id=str(tenant_id), role=role
        ):
            if isinstance(result, dict):
                extra.update(result)
        return extra

    async def _start_session(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        tenant_id: uuid.UUID,
        role: str,
        ip: str | None,
        user_agent: str,
    ) -> TokenPair:
        now = utcnow()
        auth_session = AuthSession(
            user_id=user_id,
            tenant_id=tenant_id,
            user_agent=user_agent[:512],
            ip=ip,
            created_at=now,
            last_used_at=now,
            expires_at=now + timedelta(seconds=self.settings.session_absolute_lifetime),
        )
        session.add(auth_session)
        await session.flush()
        token = rt.new_refresh_token()
        session.add(
            RefreshToken(
                session_id=auth_session.id,
                digest=rt.digest(token),
                created_at=now,
                expires_at=min(
                    now + timedelta(seconds=self.settings.refresh_token_ttl), auth_session.expires_at
                ),
            )
        )
        access, expires_in = self.tokens.issue(
            user_id=user_id,
            tenant_id=tenant_id,
            session_id=auth_session.id,
            role=role,
            extra_claims=self._claims(user_id, tenant_id, role),
        )
        await session.flush()
        return TokenPair(access, expires_in, token, auth_session.id)

    # ------------------------------------------------------------------ #
    # Ending sessions
    # ------------------------------------------------------------------ #

    async def revoke(self, session_ids: list[uuid.UUID], *, reason: str, user_id: uuid.UUID | None) -> None:
        """End sessions at once: refused on the next request on every instance.

        The database row is the truth (it survives restarts and the loss of
        Redis data) and is written first; then the revocation marks, its
        caches, tell every process. The call returns once both are done, so
        no request after it gets through; if either fails it raises (503),
        never a silent success.
        """
        if not session_ids:
            return
        async with self.db.session() as session, session.begin():
            await session.execute(
                update(AuthSession)
                .where(AuthSession.id.in_(session_ids), AuthSession.revoked_at.is_(None))
                .values(revoked_at=utcnow(), revoked_reason=reason)
                .execution_options(synchronize_session=False)
            )
        await self.revocations.revoke(*session_ids)
        if user_id is not None:
            await self.events.emit(
                "on_logout", user_id=str(user_id), session_ids=[str(s) for s in session_ids], reason=reason
            )

    async def live_session_ids(
        self, user_id: uuid.UUID, *, tenant_id: uuid.UUID | None = None, exclude: uuid.UUID | None = None
    ) -> list[uuid.UUID]:
        """Ids of the user's sessions that have not been revoked (optionally in one tenant)."""
        async with self.db.session() as session:
            query = select(AuthSession.id).where(
                AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)
            )
            if tenant_id is not None:
                query = query.where(AuthSession.tenant_id == tenant_id)
            if exclude is not None:
                query = query.where(AuthSession.id != exclude)
            return list((await session.scalars(query)).all())

    async def logout(self, principal: Principal) -> None:
        """End the caller's session."""
        await self.revoke([principal.session_id], reason="logout", user_id=principal.user_id)
        self.events.audit("logout", tenant_id=principal.tenant_id, actor_id=principal.user_id)

    async def logout_all(self, user_id: uuid.UUID, *, reason: str = "logout_all") -> None:
        """End every session of a user."""
        await self.revoke(await self.live_session_ids(user_id), reason=reason, user_id=user_id)

    async def end_others(self, principal: Principal, *, reason: str) -> None:
        """End every session of the caller but the current one."""
        others = await self.live_session_ids(principal.user_id, exclude=principal.session_id)
        await self.revoke(others, reason=reason, user_id=principal.user_id)

    async def end_member_sessions(self, user_id: uuid.UUID, tenant_id: uuid.UUID, *, reason: str) -> None:
        """End a user's sessions bound to one tenant (their membership there ended)."""
        ids = await self.live_session_ids(user_id, tenant_id=tenant_id)
        await self.revoke(ids, reason=reason, user_id=user_id)

    async def list(self, user_id: uuid.UUID) -> list[AuthSession]:
        """The user's active sessions, most recently used first.

        ``last_used_at`` is the creation time of the session's newest refresh
        token (each refresh creates one), so rotation writes nothing else.
        """
        now = utcnow()
        idle = timedelta(seconds=self.settings.session_idle_timeout)
        newest = func.max(RefreshToken.created_at).label("newest")
        async with self.db.session() as session:
            rows = await session.execute(
                select(AuthSession, newest)
                .outerjoin(
                    RefreshToken, RefreshToken.session_id == AuthSession.id
                )  # impersonations have none
                .where(
                    AuthSession.user_id == user_id,
                    AuthSession.revoked_at.is_(None),
                    AuthSession.expires_at > now,
                )
                .group_by(AuthSession.id)
            )
            result = []
            for auth_session, last in rows.all():
                last_used = as_utc(last, self.db.engine.dialect) or auth_session.created_at
                if last_used + idle > now:
                    auth_session.last_used_at = last_used
                    result.append(auth_session)
        return sorted(result, key=lambda s: s.last_used_at, reverse=True)

    async def revoke_device(self, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        """Sign one of the user's devices out (404 when it is not theirs)."""
        async with self.db.session() as session:
            owner = await session.scalar(
                select(AuthSession.user_id).where(
                    AuthSession.id == session_id, AuthSession.revoked_at.is_(None)
                )
            )
        if owner != user_id:
            raise NotFoundError("No such session.")
        await self.revoke([session_id], reason="revoked", user_id=user_id)


async def _load_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant:
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise TenantNotFoundError("Unknown tenant.")
    return tenant
