"""Accounts: registration, password change and reset, and the profile ``/auth/me`` shows.

Tenants and memberships are not created here: registration asks the tenancy
service (the one owner of those rules) inside the same transaction that
creates the user.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from tenantkit.auth import refresh as rt
from tenantkit.auth.passwords import PasswordHasher
from tenantkit.auth.sessions import Sessions
from tenantkit.cache import SyncedCache
from tenantkit.context import Principal, TenantRef, tenant_context
from tenantkit.db.base import utcnow
from tenantkit.db.engine import Database
from tenantkit.db.models import PasswordResetToken, User
from tenantkit.errors import AuthenticationError, BadRequestError, ConflictError
from tenantkit.events import Events
from tenantkit.mail import Mail
from tenantkit.security.ratelimit import RateLimiter, rate_key
from tenantkit.settings import Settings
from tenantkit.stores.base import Store
from tenantkit.tenancy.service import TenancyService

__all__ = ["RESET_PREFIX", "Accounts"]

logger = logging.getLogger("tenantkit.auth")

RESET_PREFIX = "tkp_"


class Accounts:
    """Who a user is and how they prove it. Methods raise :mod:`tenantkit.errors` exceptions.

    Args:
        settings: Token lifetimes and rate limits.
        database: Where users live.
        hasher: Hashes passwords off the event loop.
        sessions: Checks passwords under the lockout and ends sessions.
        tenancy: Creates tenants and memberships at sign-up.
        rate_limiter: Limits password checks per user.
        events: Hooks and audit rows.
        send_mail: Delivers reset messages (queued when the mailer is slow).
        store: Carries profile-cache invalidations between processes; without
            one the profile is read from the database every time.
        profile_ttl: Seconds a cached profile may be served without reloading
            (a safety net: changes made through :meth:`profile_changed` reach
            every process at once).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        database: Database,
        hasher: PasswordHasher,
        sessions: Sessions,
        tenancy: TenancyService,
        rate_limiter: RateLimiter,
        events: Events,
        send_mail: Callable[[Mail], Awaitable[None]],
        store: Store | None = None,
        profile_ttl: float = 300.0,
    ) -> None:
        self.settings = settings
        self.db = database
        self.hasher = hasher
        self.sessions = sessions
        self.tenancy = tenancy
        self.rate_limiter = rate_limiter
        self.events = events
        self.send_mail = send_mail
        #: The profile fields ``/auth/me`` shows (the email), by user id, held in process.
        self.profiles: SyncedCache[str | None] | None = (
            SyncedCache(store, "profiles", self._load_email, ttl=profile_ttl) if store is not None else None
        )
        #: Whether each user's email is verified (``/auth/me``), invalidated with the profile.
        self.verifications: SyncedCache[bool] | None = (
            SyncedCache(store, "profiles-verified", self._load_verified, ttl=profile_ttl)
            if store is not None
            else None
        )

    async def start(self) -> None:
        """Subscribe to profile invalidations (profiles are cached from then on)."""
        if self.profiles is not None:
            await self.profiles.start()
        if self.verifications is not None:
            await self.verifications.start()

    async def stop(self) -> None:
        if self.profiles is not None:
            await self.profiles.stop()
        if self.verifications is not None:
            await self.verifications.stop()

    async def register(
        self,
        *,
        email: str,
        password: str,
        tenant_name: str | None = None,
        tenant: TenantRef | None = None,
        invite_token: str | None = None,
    ) -> tuple[User, TenantRef, str]:
        """Create an account and its first membership (see :meth:`TenancyService.sign_up`)."""
        async with self.db.session() as session:
            if await session.scalar(select(User.id).where(User.email == email)) is not None:
                raise ConflictError("An account with this email already exists.")
        password_hash = await self.hasher.hash(password)
        # Row-level security sees the joined tenant from the transaction's first statement.
        scope = self.tenancy.sign_up_scope(tenant=tenant, invite_token=invite_token)
        try:
            with contextlib.nullcontext() if scope is None else tenant_context(scope):
                async with self.db.transaction() as uow:
                    user = User(email=email, password_hash=password_hash)
                    uow.session.add(user)
                    await uow.session.flush()
                    ref, role = await self.tenancy.sign_up(
                        uow, user.id, email, tenant_name=tenant_name, tenant=tenant, invite_token=invite_token
                    )
        except IntegrityError:
            raise ConflictError("An account with this email already exists.") from None
        await self.events.emit(
            "on_register", user_id=str(user.id), email=email, tenant_id=str(ref.id), role=role
        )
        self.events.audit("user.registered", tenant_id=ref.id, actor_id=user.id, data={"role": role})
        return user, ref, role

    async def email_of(self, user_id: uuid.UUID) -> str | None:
        """The user's email address (from memory when warm: a repeated ``/auth/me`` reads no database)."""
        if self.profiles is None:
            return await self._load_email(str(user_id))
        return await self.profiles.get(str(user_id))

    async def _load_email(self, key: str) -> str | None:
        async with self.db.session() as session:
            return await session.scalar(select(User.email).where(User.id == uuid.UUID(key)))

    async def email_verified(self, user_id: uuid.UUID) -> bool:
        """Whether the user proved they read mail at their address (cached like the email)."""
        if self.verifications is None:
            return await self._load_verified(str(user_id))
        return await self.verifications.get(str(user_id))

    async def _load_verified(self, key: str) -> bool:
        async with self.db.session() as session:
            verified = await session.scalar(select(User.email_verified_at).where(User.id == uuid.UUID(key)))
        return verified is not None

    async def profile_changed(self, *user_ids: uuid.UUID) -> None:
        """Drop the cached profiles of ``user_ids`` in every process.

        Call it after committing a change to what ``/auth/me`` shows (a user's
        email) or to whether the user may act at all (deactivation); inside a
        unit of work, register it with ``uow.after_commit``.
        """
        if self.profiles is not None and user_ids:
            await self.profiles.invalidate(*(str(user_id) for user_id in user_ids))
        if self.verifications is not None and user_ids:
            await self.verifications.invalidate(*(str(user_id) for user_id in user_ids))

    async def change_password(self, principal: Principal, current: str, new: str, *, ip: str | None) -> None:
        """Change the password; the user's other sessions end.

        The current-password check is rate limited per user and counts toward
        the account's lockout like a failed sign-in (423 once locked), so a
        stolen access token is no password oracle.
        """
        await self.rate_limiter.check(
            rate_key("user", str(principal.user_id), "password"),
            self.settings.rate_limit_auth,
            policy="auth-user",
        )
        email = await self.email_of(principal.user_id)
        if email is None:
            raise AuthenticationError("The current password is wrong.")
        try:
            await self.sessions.check_password(email, current, ip=ip, reason="password_change")
        except AuthenticationError:
            raise AuthenticationError("The current password is wrong.") from None
        new_hash = await self.hasher.hash(new)
        async with self.db.session() as session, session.begin():
            await session.execute(
                update(User)
                .where(User.id == principal.user_id)
                .values(password_hash=new_hash, password_changed_at=utcnow())
                .execution_options(synchronize_session=False)
            )
        await self.sessions.end_others(principal, reason="password_changed")
        self.events.audit("password.changed", tenant_id=principal.tenant_id, actor_id=principal.user_id)

    async def request_password_reset(self, email: str) -> None:
        """Mail a single-use reset token if the account exists (callers answer 202 either way)."""
        async with self.db.session() as session:
            user = await session.scalar(select(User).where(User.email == email, User.is_active.is_(True)))
        if user is None:
            return
        token = RESET_PREFIX + secrets.token_urlsafe(32)
        expires = utcnow() + timedelta(seconds=self.settings.password_reset_ttl)
        async with self.db.session() as session, session.begin():
            session.add(PasswordResetToken(user_id=user.id, digest=rt.digest(token), expires_at=expires))
        await self.send_mail(
            Mail(
                to=email,
                subject="Reset your password",
                body=(
                    "Someone asked to reset the password of this account.\n"
                    f"Reset token: {token}\n"
                    f"It works once and expires at {expires.isoformat()}. "
                    "If it was not you, ignore this message."
                ),
                kind="password_reset",
            )
        )

    async def confirm_password_reset(self, token: str, new_password: str) -> None:
        """Set a new password with a reset token; every session of the user ends and any lock lifts."""
        if not token.startswith(RESET_PREFIX):
            raise BadRequestError("Invalid or expired reset token.")
        new_hash = await self.hasher.hash(new_password)
        now = utcnow()
        async with self.db.session() as session, session.begin():
            used = (
                await session.execute(
                    update(PasswordResetToken)
                    .where(
                        PasswordResetToken.digest == rt.digest(token),
                        PasswordResetToken.used_at.is_(None),
                        PasswordResetToken.expires_at > now,
                    )
                    .values(used_at=now)
                    .returning(PasswordResetToken.user_id)
                    .execution_options(synchronize_session=False)
                )
            ).first()
            if used is None:
                raise BadRequestError("Invalid or expired reset token.")
            user = await session.get(User, used.user_id)
            assert user is not None
            user.password_hash = new_hash
            user.password_changed_at = now
            if user.email_verified_at is None:  # the token reached their mailbox
                user.email_verified_at = now
            email = user.email
        await self.profile_changed(used.user_id)
        await self.sessions.lockout.clear(email)
        await self.sessions.logout_all(used.user_id, reason="password_reset")
        self.events.security("password.reset", data={"user_id": str(used.user_id)})
