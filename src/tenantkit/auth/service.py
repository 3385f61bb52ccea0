"""The authentication service: the Python API behind the ``/auth`` routes."""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import String, Table, Uuid, bindparam, exists, func, insert, literal_column, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tenantkit.auth import refresh as rt
from tenantkit.context import Principal, TenantRef
from tenantkit.db import fastpath
from tenantkit.db.base import UTCDateTime, utcnow
from tenantkit.db.models import (
    AuthSession,
    Invitation,
    Membership,
    PasswordResetToken,
    RefreshToken,
    Tenant,
    User,
)
from tenantkit.errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ExpiredTokenError,
    InvalidTokenError,
    NotFoundError,
    PermissionDeniedError,
    TenantForbiddenError,
    TenantNotFoundError,
    TokenReuseError,
)
from tenantkit.mail import Mail
from tenantkit.normalize import slugify
from tenantkit.tenancy.directory import tenant_ref
from tenantkit.tenancy.scoping import tenant_scope

if TYPE_CHECKING:
    from tenantkit.kit import TenantKit

__all__ = ["AuthService", "TokenPair"]

logger = logging.getLogger("tenantkit.auth")

INVITE_PREFIX = "tki_"
RESET_PREFIX = "tkp_"
GENERIC_LOGIN_FAILURE = "Invalid email or password."


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login, refresh or tenant switch returns."""

    access_token: str
    expires_in: int
    refresh_token: str
    session_id: uuid.UUID

    def as_dict(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
        }


def _invite_token(tenant_id: uuid.UUID) -> str:
    return f"{INVITE_PREFIX}{tenant_id.hex}_{secrets.token_urlsafe(32)}"


def invitation_tenant(token: str) -> uuid.UUID | None:
    """The tenant an invitation token belongs to (parsed, not trusted), or ``None``."""
    if not token.startswith(INVITE_PREFIX):
        return None
    tenant_hex, _, secret = token[len(INVITE_PREFIX) :].partition("_")
    try:
        return uuid.UUID(hex=tenant_hex) if len(secret) >= 32 else None
    except ValueError:
        return None


def _session_fact(expression: str, type_: Any) -> Any:
    # Written out (fixed text, no input) because SQLite renders RETURNING columns
    # unqualified, which would make generated correlated subqueries ambiguous.
    return literal_column(
        f"(SELECT {expression} FROM auth_sessions AS s "  # noqa: S608 - fixed fragments only
        "LEFT JOIN memberships AS m ON m.tenant_id = s.tenant_id AND m.user_id = s.user_id "
        "WHERE s.id = refresh_tokens.session_id)",
        type_,
    )


_SESSION_FACTS = (
    _session_fact("s.user_id", Uuid()),
    _session_fact("s.tenant_id", Uuid()),
    _session_fact("s.expires_at", UTCDateTime()),
    _session_fact("m.role", String()),
)


def _spend_statements() -> tuple[Any, Any]:
    """The rotation's ``UPDATE``: it spends a token only while everything it stands on is valid.

    Returns the portable form (the session's validity as one ``EXISTS``; SQLite can
    return only the updated table's columns, so the session's facts come from
    subqueries) and PostgreSQL's ``UPDATE ... FROM`` join, which returns them directly.
    """
    now = bindparam("b_now", type_=UTCDateTime())
    tokens = cast("Table", RefreshToken.__table__)
    token_ok = (
        tokens.c.digest == bindparam("b_digest"),
        tokens.c.spent_at.is_(None),
        tokens.c.expires_at > now,
        tokens.c.created_at > bindparam("b_idle_since", type_=UTCDateTime()),
    )
    session_ok = (
        AuthSession.id == tokens.c.session_id,
        AuthSession.revoked_at.is_(None),
        AuthSession.expires_at > now,
        User.id == AuthSession.user_id,
        User.is_active.is_(True),
        Tenant.id == AuthSession.tenant_id,
        Tenant.status == "active",
        Membership.tenant_id == AuthSession.tenant_id,
        Membership.user_id == AuthSession.user_id,
    )
    spend = update(tokens).values(spent_at=now, successor_id=bindparam("b_successor_id"))
    portable = spend.where(*token_ok, exists().where(*session_ok)).returning(
        tokens.c.session_id, *_SESSION_FACTS
    )
    joined = spend.where(*token_ok, *session_ok).returning(
        tokens.c.session_id,
        AuthSession.user_id,
        AuthSession.tenant_id,
        AuthSession.expires_at,
        Membership.role,
    )
    return portable, joined


#: Built once: the rotation's two statements.
_SPEND_PORTABLE, _SPEND_JOINED = _spend_statements()
_SPEND = fastpath.FastStatement(_SPEND_PORTABLE, variants={"postgresql": _SPEND_JOINED})
_MINT = fastpath.FastStatement(
    insert(cast("Table", RefreshToken.__table__)),
    column_keys=["id", "session_id", "digest", "created_at", "expires_at", "sealed_pair"],
)


def _as_utc(value: Any, dialect: Any) -> Any:
    """A timestamp read through a subquery or aggregate (no column type applied) as aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return UTCDateTime().process_result_value(value, dialect)


class AuthService:
    """Accounts, sessions and tokens. Methods raise :mod:`tenantkit.errors` exceptions."""

    def __init__(self, kit: TenantKit) -> None:
        self.kit = kit
        self.settings = kit.settings
        self.db = kit.database
        self.hasher = kit.passwords
        self.tokens = kit.tokens

    # ------------------------------------------------------------------ #
    # Registration and invitations
    # ------------------------------------------------------------------ #

    async def register(
        self,
        *,
        email: str,
        password: str,
        tenant_name: str | None = None,
        tenant: TenantRef | None = None,
        invite_token: str | None = None,
    ) -> tuple[User, TenantRef, str]:
        """Create an account and its first membership.

        With ``tenant_name`` a new tenant is created and the user becomes its
        ADMIN; with ``invite_token`` the user joins the inviting tenant with the
        invited role; with ``tenant`` alone the user joins it as USER when it
        allows open sign-up.
        """
        async with self.db.session() as session:
            if await session.scalar(select(User.id).where(User.email == email)) is not None:
                raise ConflictError("An account with this email already exists.")
        password_hash = await self.hasher.hash(password)
        try:
            async with self.db.session() as session, session.begin():
                user = User(email=email, password_hash=password_hash)
                session.add(user)
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
                await session.flush()
                session.add(Membership(tenant_id=target.id, user_id=user.id, role=role))
                ref = tenant_ref(target)
        except IntegrityError:
            raise ConflictError("An account with this email already exists.") from None
        if tenant_name is not None:
            await self.kit.emit("on_tenant_created", tenant=ref, owner_id=str(user.id))
        await self.kit.directory.membership_changed(ref.id, user.id)
        await self.kit.emit(
            "on_register", user_id=str(user.id), email=email, tenant_id=str(ref.id), role=role
        )
        self.kit.audit("user.registered", tenant_id=ref.id, actor_id=user.id, data={"role": role})
        return user, ref, role

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
        with tenant_scope(tenant_id):  # invitations are tenant-owned (ORM scoping and RLS)
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
        """Create a single-use invitation and mail its token; returns it and the token."""
        token = _invite_token(tenant.id)
        async with self.db.session() as session, session.begin():
            invitation = Invitation(
                tenant_id=tenant.id,
                email=email,
                role=role,
                digest=rt.digest(token),
                invited_by=invited_by,
                expires_at=utcnow() + timedelta(seconds=self.settings.invitation_ttl),
            )
            session.add(invitation)
        await self.kit.send_mail(
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
        self.kit.audit(
            "invitation.created", tenant_id=tenant.id, actor_id=invited_by, target=email, data={"role": role}
        )
        return invitation, token

    async def accept_invitation(self, user_id: uuid.UUID, token: str) -> tuple[TenantRef, str]:
        """An existing user joins the inviting tenant with the invited role."""
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
        await self.kit.directory.membership_changed(ref.id, user_id)
        await self.kit.emit(
            "on_membership_changed", tenant_id=str(ref.id), user_id=str(user_id), role=role, actor_id=None
        )
        self.kit.audit("membership.joined", tenant_id=ref.id, actor_id=user_id, data={"role": role})
        return ref, role

    # ------------------------------------------------------------------ #
    # Login, refresh, sessions
    # ------------------------------------------------------------------ #

    async def login(
        self,
        *,
        email: str,
        password: str,
        tenant: TenantRef | None,
        ip: str | None,
        user_agent: str,
    ) -> TokenPair:
        """Check credentials (with lockout) and start a session in a tenant."""
        attempt = await self.kit.lockout.begin(email)
        async with self.db.session() as session:
            user = await session.scalar(select(User).where(User.email == email))
        stored = user.password_hash if user is not None and user.is_active else None
        if not await self.hasher.verify(password, stored):
            locked = await self.kit.lockout.failed(email, attempt)
            self.kit.metrics.login_failures.inc()
            await self.kit.emit("on_login_failed", email=email, reason="invalid_credentials", ip=ip)
            self.kit.audit(
                "login.failed",
                tenant_id=tenant.id if tenant is not None else None,
                actor_id=user.id if user else None,
                ip=ip,
                target=email,
            )
            if locked:
                self.kit.metrics.lockouts.inc()
                until = utcnow().timestamp() + self.kit.lockout.seconds
                await self.kit.emit("on_lockout", email=email, until=until, ip=ip)
                self.kit.audit(
                    "login.locked",
                    tenant_id=tenant.id if tenant is not None else None,
                    actor_id=user.id if user else None,
                    ip=ip,
                    target=email,
                )
            raise AuthenticationError(GENERIC_LOGIN_FAILURE)
        assert user is not None
        await self.kit.lockout.succeeded(email)
        async with self.db.session() as session, session.begin():
            user = await session.get(User, user.id, with_for_update=False)
            assert user is not None
            if self.hasher.needs_rehash(user.password_hash):
                user.password_hash = await self.hasher.hash(password)
            membership = await self._pick_membership(session, user.id, tenant)
            if membership is None:
                await self.kit.emit("on_login_failed", email=email, reason="not_member", ip=ip)
                raise PermissionDeniedError("You are not a member of this tenant.")
            target = await self._load_tenant(session, membership.tenant_id)
            if target.status != "active":
                raise TenantForbiddenError("This tenant is suspended.")
            membership.last_used_at = utcnow()
            user.last_login_at = utcnow()
            pair = await self._start_session(
                session, user.id, membership.tenant_id, membership.role, ip, user_agent
            )
        self.kit.metrics.logins.inc()
        await self.kit.emit(
            "on_login", user_id=str(user.id), tenant_id=str(target.id), session_id=str(pair.session_id), ip=ip
        )
        self.kit.audit("login.succeeded", tenant_id=target.id, actor_id=user.id, ip=ip)
        return pair

    async def _pick_membership(
        self, session: AsyncSession, user_id: uuid.UUID, tenant: TenantRef | None
    ) -> Membership | None:
        query = select(Membership).where(Membership.user_id == user_id)
        if tenant is not None:
            query = query.where(Membership.tenant_id == tenant.id)
        query = query.order_by(Membership.last_used_at.desc()).limit(1)
        return await session.scalar(query)

    async def _claims(self, user_id: uuid.UUID, tenant_id: uuid.UUID, role: str) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        for result in self.kit.hook.tenantkit_access_token_claims(
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
            extra_claims=await self._claims(user_id, tenant_id, role),
        )
        await session.flush()
        return TokenPair(access, expires_in, token, auth_session.id)

    async def refresh(self, token: str, *, ip: str | None) -> TokenPair:
        """Rotate ``token``: spend it and return its successor (race-free).

        One conditional ``UPDATE`` consumes the token only if it is unspent,
        unexpired, not idle, and its session, user, membership and tenant are
        all still valid; it returns what the new access token needs. One
        ``INSERT`` stores the successor, together with the new pair sealed
        under the parent token for idempotent duplicates in the grace window.

        Raises:
            InvalidTokenError: unknown, expired, or its session ended.
            TokenReuseError: a spent token outside the grace window; the session is revoked.
        """
        if not rt.looks_like_refresh_token(token):
            raise InvalidTokenError("Invalid refresh token.")
        digest = rt.digest(token)
        now = utcnow()
        successor = rt.new_refresh_token()
        successor_id = uuid.uuid4()
        # Both tables are global (no tenant scoping applies): the statements are built
        # once and, on PostgreSQL, run as prepared statements on the driver connection.
        async with fastpath.transaction(self.db) as run:
            row = await run.fetchrow(
                _SPEND,
                {
                    "b_digest": digest,
                    "b_now": now,
                    "b_idle_since": now - timedelta(seconds=self.settings.session_idle_timeout),
                    "b_successor_id": successor_id,
                },
            )
            if row is not None:
                session_id, user_id, tenant_id, session_expires, role_name = row
                access, expires_in = self.tokens.issue(
                    user_id=user_id,
                    tenant_id=tenant_id,
                    session_id=session_id,
                    role=role_name,
                    extra_claims=await self._claims(user_id, tenant_id, role_name),
                )
                sealed = None
                if self.settings.refresh_grace_seconds:
                    pair = {"rt": successor, "at": access, "exp": now.timestamp() + expires_in}
                    sealed = rt.seal(token, json.dumps(pair))
                await run.execute(
                    _MINT,
                    {
                        "id": successor_id,
                        "session_id": session_id,
                        "digest": rt.digest(successor),
                        "created_at": now,
                        "expires_at": min(
                            now + timedelta(seconds=self.settings.refresh_token_ttl), session_expires
                        ),
                        "sealed_pair": sealed,
                    },
                )
                return TokenPair(access, expires_in, successor, session_id)
        return await self._refresh_rejected(token, digest, now, ip)

    async def _refresh_rejected(self, token: str, digest: bytes, now: datetime, ip: str | None) -> TokenPair:
        """Classify a refresh that did not rotate: duplicate in grace, reuse, or an ended session."""
        async with self.db.session() as session:
            row = await session.scalar(select(RefreshToken).where(RefreshToken.digest == digest))
            if row is None:
                raise InvalidTokenError("Invalid refresh token.")
            auth_session = await session.get(AuthSession, row.session_id)
            successor = await session.get(RefreshToken, row.successor_id) if row.successor_id else None
            tenant = await session.get(Tenant, auth_session.tenant_id) if auth_session else None
        assert auth_session is not None
        if auth_session.revoked_at is not None:
            await self._reuse_detected(auth_session, "revoked", ip, revoke=False)
            raise InvalidTokenError("The session has ended.")
        if row.spent_at is None:
            idle = timedelta(seconds=self.settings.session_idle_timeout)
            if row.expires_at <= now or auth_session.expires_at <= now or row.created_at + idle <= now:
                await self._reuse_detected(auth_session, "expired", ip, revoke=False)
                raise ExpiredTokenError("The refresh token expired.")
            if tenant is None or tenant.status != "active":
                raise TenantForbiddenError("This tenant is suspended.")
            raise InvalidTokenError("The session has ended.")
        grace = self.settings.refresh_grace_seconds
        sealed = successor.sealed_pair if successor is not None else None
        if grace and sealed and (now - row.spent_at).total_seconds() <= grace:
            opened = rt.open_box(token, sealed)
            if opened is not None:
                pair = json.loads(opened)
                expires_in = int(pair["exp"] - now.timestamp())
                if expires_in > 0:
                    return TokenPair(pair["at"], expires_in, pair["rt"], auth_session.id)
        await self._reuse_detected(auth_session, "spent", ip, revoke=True)
        raise TokenReuseError("This refresh token was already used; the session has been revoked.")

    async def _reuse_detected(
        self, auth_session: AuthSession, classification: str, ip: str | None, *, revoke: bool
    ) -> None:
        if revoke:
            await self.revoke_sessions([auth_session.id], reason="token_reuse", user_id=auth_session.user_id)
            self.kit.metrics.token_reuse.inc()
            logger.warning(
                "refresh token reuse detected; session revoked",
                extra={"session_id": str(auth_session.id), "classification": classification},
            )
        await self.kit.emit(
            "on_token_reuse",
            user_id=str(auth_session.user_id),
            session_id=str(auth_session.id),
            classification=classification,
            ip=ip,
        )
        self.kit.audit(
            "token.reuse",
            tenant_id=auth_session.tenant_id,
            actor_id=auth_session.user_id,
            ip=ip,
            target=str(auth_session.id),
            data={"classification": classification, "revoked": revoke},
        )

    async def revoke_sessions(
        self, session_ids: list[uuid.UUID], *, reason: str, user_id: uuid.UUID | None = None
    ) -> None:
        """End sessions at once: refused on the next request on every instance."""
        if not session_ids:
            return
        await self.kit.revocations.revoke(*session_ids)
        async with self.db.session() as session, session.begin():
            await session.execute(
                update(AuthSession)
                .where(AuthSession.id.in_(session_ids), AuthSession.revoked_at.is_(None))
                .values(revoked_at=utcnow(), revoked_reason=reason)
                .execution_options(synchronize_session=False)
            )
        if user_id is not None:
            await self.kit.emit(
                "on_logout", user_id=str(user_id), session_ids=[str(s) for s in session_ids], reason=reason
            )

    async def _live_session_ids(
        self, user_id: uuid.UUID, *, tenant_id: uuid.UUID | None = None, exclude: uuid.UUID | None = None
    ) -> list[uuid.UUID]:
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
        await self.revoke_sessions([principal.session_id], reason="logout", user_id=principal.user_id)
        self.kit.audit("logout", tenant_id=principal.tenant_id, actor_id=principal.user_id)

    async def logout_all(self, user_id: uuid.UUID, *, reason: str = "logout_all") -> None:
        """End every session of a user."""
        await self.revoke_sessions(await self._live_session_ids(user_id), reason=reason, user_id=user_id)

    async def end_tenant_sessions(self, user_id: uuid.UUID, tenant_id: uuid.UUID, *, reason: str) -> None:
        """End a user's sessions bound to one tenant (membership removed)."""
        ids = await self._live_session_ids(user_id, tenant_id=tenant_id)
        await self.revoke_sessions(ids, reason=reason, user_id=user_id)

    async def list_sessions(self, user_id: uuid.UUID) -> list[AuthSession]:
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
                .join(RefreshToken, RefreshToken.session_id == AuthSession.id)
                .where(
                    AuthSession.user_id == user_id,
                    AuthSession.revoked_at.is_(None),
                    AuthSession.expires_at > now,
                )
                .group_by(AuthSession.id)
            )
            result = []
            for auth_session, last in rows.all():
                last_used = _as_utc(last, self.db.engine.dialect) or auth_session.created_at
                if last_used + idle > now:
                    auth_session.last_used_at = last_used
                    result.append(auth_session)
        return sorted(result, key=lambda s: s.last_used_at, reverse=True)

    async def revoke_session(self, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        """Sign one of the user's devices out (404 when it is not theirs)."""
        async with self.db.session() as session:
            owner = await session.scalar(
                select(AuthSession.user_id).where(
                    AuthSession.id == session_id, AuthSession.revoked_at.is_(None)
                )
            )
        if owner != user_id:
            raise NotFoundError("No such session.")
        await self.revoke_sessions([session_id], reason="revoked", user_id=user_id)

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
            membership.last_used_at = utcnow()
            pair = await self._start_session(
                session, principal.user_id, tenant.id, membership.role, ip, user_agent
            )
        self.kit.audit("tenant.switched", tenant_id=tenant.id, actor_id=principal.user_id, ip=ip)
        return pair

    # ------------------------------------------------------------------ #
    # Passwords
    # ------------------------------------------------------------------ #

    async def change_password(self, principal: Principal, current: str, new: str) -> None:
        """Change the password; the user's other sessions end."""
        async with self.db.session() as session:
            user = await session.get(User, principal.user_id)
        if user is None or not await self.hasher.verify(current, user.password_hash):
            raise AuthenticationError("The current password is wrong.")
        new_hash = await self.hasher.hash(new)
        async with self.db.session() as session, session.begin():
            await session.execute(
                update(User)
                .where(User.id == principal.user_id)
                .values(password_hash=new_hash, password_changed_at=utcnow())
                .execution_options(synchronize_session=False)
            )
        others = await self._live_session_ids(principal.user_id, exclude=principal.session_id)
        await self.revoke_sessions(others, reason="password_changed", user_id=principal.user_id)
        self.kit.audit("password.changed", tenant_id=principal.tenant_id, actor_id=principal.user_id)

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
        await self.kit.send_mail(
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
        self.kit.audit("password.reset_requested", actor_id=user.id)

    async def confirm_password_reset(self, token: str, new_password: str) -> None:
        """Set a new password with a reset token; every session of the user ends."""
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
            email = user.email
        await self.kit.lockout.clear(email)
        await self.logout_all(used.user_id, reason="password_reset")
        self.kit.audit("password.reset", actor_id=used.user_id)
