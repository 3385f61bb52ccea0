"""Who a federated identity is: sign-in resolution, linking, unlinking.

:class:`FederatedSignIn` turns what a provider vouched for (an
:class:`Assertion`) into a session, by these rules:

1. an identity (``iss``, ``sub``) already linked → that user;
2. else an account with the same email → linked only when the provider
   asserts ``email_verified`` *and* the account's email is verified (for a
   tenant's single sign-on: when the provider asserts ``email_verified`` and
   the account is already a member of that tenant); otherwise 409 (problem
   type ``.../account-exists``): the user signs in another way and links the
   identity explicitly;
3. else a new account: for a platform provider with a tenant of its own, as
   ``/auth/register`` does; for a tenant's single sign-on, a member of that
   tenant. The account has no usable password.

Plugins may refuse (``tenantkit_authorize_federated_login``, 403) and choose
the role of new single sign-on members (``tenantkit_map_federated_role``).
Nothing is created when a rule refuses. The session is started as a password
sign-in's is (:meth:`Sessions.sign_in_federated`), second factor included.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from tenantkit.auth.mfa import Challenge
from tenantkit.auth.passwords import is_usable_password, unusable_password
from tenantkit.auth.sessions import Sessions
from tenantkit.auth.tokens import TokenPair
from tenantkit.context import TenantRef
from tenantkit.db.base import utcnow
from tenantkit.db.engine import Database
from tenantkit.db.models import AuthSession, Membership, User, UserIdentity
from tenantkit.errors import (
    AccountExistsError,
    ConflictError,
    FederatedLoginRefusedError,
    NotFoundError,
    OidcError,
    PermissionDeniedError,
)
from tenantkit.events import Events
from tenantkit.federation.base import TenantProvider
from tenantkit.mail import Mail
from tenantkit.normalize import normalize_email
from tenantkit.rbac.roles import USER
from tenantkit.tenancy.directory import TenantDirectory
from tenantkit.tenancy.service import TenancyService

__all__ = ["AccountExistsError", "Assertion", "FederatedSignIn", "SignInResult"]


@dataclass(frozen=True, slots=True)
class Assertion:
    """What an identity provider vouched for, once its ID token checked out.

    Attributes:
        provider: ``oidc:<name>`` or ``sso:<tenant id>`` (recorded on the identity).
        name: The provider's name for hooks (``<name>``, or ``sso:<tenant slug>``).
        issuer: The ``iss``.
        subject: The ``sub``.
        email: The email (normalised), or ``None`` when the provider shared none.
        email_verified: Whether the provider asserted ``email_verified``.
        claims: Every claim (ID token, then userinfo).
    """

    provider: str
    name: str
    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    claims: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_claims(cls, provider: str, name: str, issuer: str, claims: dict[str, Any]) -> Assertion:
        """Read ``sub``, ``email`` and ``email_verified`` (``true`` or ``"true"``) from ``claims``."""
        email: str | None = None
        raw = claims.get("email")
        if isinstance(raw, str) and raw:
            try:
                email = normalize_email(raw)
            except ValueError:
                raise OidcError(
                    "The identity provider shared an email address this server cannot use."
                ) from None
        verified = claims.get("email_verified")
        return cls(
            provider=provider,
            name=name,
            issuer=issuer,
            subject=str(claims["sub"]),
            email=email,
            email_verified=verified is True or verified == "true",
            claims=claims,
        )


@dataclass(frozen=True, slots=True)
class SignInResult:
    """A federated sign-in's outcome: a token pair, or the second-factor challenge."""

    user_id: uuid.UUID
    outcome: TokenPair | Challenge
    created: bool = False
    linked: bool = False


class FederatedSignIn:
    """Resolves federated identities to users and starts their sessions.

    Args:
        database: Users and identities.
        sessions: Starts the session (second factor included).
        tenancy: Creates tenants and memberships.
        directory: Finds tenants by id.
        events: Hooks and audit rows.
        send_mail: Tells a user when an identity is linked to their account.
    """

    def __init__(
        self,
        *,
        database: Database,
        sessions: Sessions,
        tenancy: TenancyService,
        directory: TenantDirectory,
        events: Events,
        send_mail: Callable[[Mail], Awaitable[None]] | None = None,
    ) -> None:
        self.db = database
        self.sessions = sessions
        self.tenancy = tenancy
        self.directory = directory
        self.events = events
        self.send_mail = send_mail

    # -- hooks ---------------------------------------------------------------- #

    def _authorize(self, assertion: Assertion, user_id: uuid.UUID | None, *, ip: str | None) -> None:
        verdict = self.events.hook.tenantkit_authorize_federated_login(
            provider=assertion.name, claims=dict(assertion.claims), user_id=str(user_id) if user_id else None
        )
        if verdict is None or verdict is True:
            return
        reason = verdict if isinstance(verdict, str) and verdict else "refused by policy"
        self.events.security(
            "federated.refused", ip=ip, data={"provider": assertion.name, "reason": reason[:200]}
        )
        raise FederatedLoginRefusedError(f"This sign-in was refused: {reason[:200]}")

    def _role(self, assertion: Assertion, tenant_id: uuid.UUID) -> str:
        role = self.events.hook.tenantkit_map_federated_role(
            provider=assertion.name, claims=dict(assertion.claims), tenant_id=str(tenant_id)
        )
        return role if isinstance(role, str) and role else USER

    # -- lookups --------------------------------------------------------------- #

    async def _known(self, assertion: Assertion) -> tuple[UserIdentity, User] | None:
        async with self.db.session() as session:
            row = (
                await session.execute(
                    select(UserIdentity, User)
                    .join(User, User.id == UserIdentity.user_id)
                    .where(UserIdentity.issuer == assertion.issuer, UserIdentity.subject == assertion.subject)
                )
            ).first()
        return None if row is None else (row[0], row[1])

    async def _by_email(self, email: str) -> User | None:
        async with self.db.session() as session:
            return await session.scalar(select(User).where(User.email == email))

    async def _is_member(self, user_id: uuid.UUID, tenant_id: uuid.UUID) -> bool:
        async with self.db.session() as session:
            return await session.get(Membership, (tenant_id, user_id)) is not None

    async def _touch(self, identity_id: uuid.UUID, email: str | None) -> None:
        async with self.db.session() as session, session.begin():
            identity = await session.get(UserIdentity, identity_id)
            if identity is not None:
                identity.last_used_at = utcnow()
                if email is not None:
                    identity.email = email

    async def _add_identity(self, user_id: uuid.UUID, assertion: Assertion) -> UserIdentity:
        now = utcnow()
        identity = UserIdentity(
            user_id=user_id,
            provider=assertion.provider,
            issuer=assertion.issuer,
            subject=assertion.subject,
            email=assertion.email,
            created_at=now,
            last_used_at=now,
        )
        try:
            async with self.db.session() as session, session.begin():
                session.add(identity)
                if assertion.email_verified:
                    user = await session.get(User, user_id)
                    if user is not None and user.email == assertion.email and user.email_verified_at is None:
                        user.email_verified_at = now
        except IntegrityError:
            raise ConflictError("This identity is already linked to an account.") from None
        return identity

    async def _create_user(
        self, assertion: Assertion, *, tenant_name: str | None
    ) -> tuple[User, TenantRef | None]:
        """A new account with the identity (and, with ``tenant_name``, its own tenant), in one transaction."""
        assert assertion.email is not None
        now = utcnow()
        try:
            async with self.db.transaction() as uow:
                user = User(
                    email=assertion.email,
                    password_hash=unusable_password(),
                    email_verified_at=now if assertion.email_verified else None,
                )
                uow.session.add(user)
                await uow.session.flush()
                uow.session.add(
                    UserIdentity(
                        user_id=user.id,
                        provider=assertion.provider,
                        issuer=assertion.issuer,
                        subject=assertion.subject,
                        email=assertion.email,
                        created_at=now,
                        last_used_at=now,
                    )
                )
                ref: TenantRef | None = None
                if tenant_name is not None:
                    ref, _ = await self.tenancy.sign_up(
                        uow, user.id, assertion.email, tenant_name=tenant_name
                    )
        except IntegrityError:
            raise ConflictError(
                "An account for this identity was created concurrently; sign in again."
            ) from None
        return user, ref

    async def _tenant_of(self, pair: TokenPair | Challenge) -> uuid.UUID | None:
        if not isinstance(pair, TokenPair):
            return None
        async with self.db.session() as session:
            return await session.scalar(
                select(AuthSession.tenant_id).where(AuthSession.id == pair.session_id)
            )

    async def _start(
        self,
        assertion: Assertion,
        user: User,
        tenant: TenantRef | None,
        *,
        ip: str | None,
        user_agent: str,
        created: bool = False,
        linked: bool = False,
    ) -> SignInResult:
        if not user.is_active:
            raise PermissionDeniedError("This account is disabled.")
        outcome = await self.sessions.sign_in_federated(
            user.id, user.email, tenant, ip=ip, user_agent=user_agent
        )
        tenant_id = tenant.id if tenant is not None else await self._tenant_of(outcome)
        self.events.audit(
            "federated.login",
            tenant_id=tenant_id,
            actor_id=user.id,
            ip=ip,
            data={"provider": assertion.provider, "created": created, "linked": linked},
        )
        await self.events.emit(
            "on_federated_login",
            user_id=str(user.id),
            provider=assertion.name,
            tenant_id=str(tenant_id) if tenant_id else None,
            created=created,
            linked=linked,
        )
        return SignInResult(user.id, outcome, created, linked)

    def _exists(self, assertion: Assertion, ip: str | None) -> AccountExistsError:
        self.events.security("federated.account_exists", ip=ip, data={"provider": assertion.provider})
        return AccountExistsError(
            "An account with this email already exists. Sign in to it and link this identity "
            "from your account (POST /auth/oidc/{name}/link)."
        )

    # -- platform providers ------------------------------------------------------- #

    async def sign_in(self, assertion: Assertion, *, ip: str | None, user_agent: str) -> SignInResult:
        """Sign in with a platform provider's identity (see the module doc for the rules)."""
        known = await self._known(assertion)
        if known is not None:
            identity, user = known
            self._authorize(assertion, user.id, ip=ip)
            await self._touch(identity.id, assertion.email)
            return await self._start(assertion, user, None, ip=ip, user_agent=user_agent)
        email = self._require_email(assertion)
        existing = await self._by_email(email)
        if existing is not None:
            if not (assertion.email_verified and existing.email_verified_at is not None):
                raise self._exists(assertion, ip)
            if not existing.is_active:
                raise PermissionDeniedError("This account is disabled.")
            self._authorize(assertion, existing.id, ip=ip)
            await self._add_identity(existing.id, assertion)
            self._linked_audit(assertion, existing.id, None, via="email")
            await self._notify_linked(existing.id, assertion)
            return await self._start(assertion, existing, None, ip=ip, user_agent=user_agent, linked=True)
        self._authorize(assertion, None, ip=ip)
        user, ref = await self._create_user(assertion, tenant_name=self._tenant_name(assertion))
        assert ref is not None
        await self.events.emit(
            "on_register", user_id=str(user.id), email=email, tenant_id=str(ref.id), role="ADMIN"
        )
        self.events.audit(
            "user.registered",
            tenant_id=ref.id,
            actor_id=user.id,
            data={"role": "ADMIN", "via": assertion.provider},
        )
        return await self._start(assertion, user, ref, ip=ip, user_agent=user_agent, created=True)

    # -- a tenant's single sign-on --------------------------------------------------- #

    async def sign_in_sso(
        self, assertion: Assertion, provider: TenantProvider, *, ip: str | None, user_agent: str
    ) -> SignInResult:
        """Sign in through ``provider`` (a tenant's own): the session lands in that tenant."""
        tenant = await self.directory.get(provider.tenant_id)
        if tenant is None:
            raise NotFoundError("Unknown tenant.")
        covered = assertion.email is not None and provider.covers(assertion.email)
        known = await self._known(assertion)
        if known is not None:
            identity, user = known
            self._authorize(assertion, user.id, ip=ip)
            if covered and not await self._is_member(user.id, tenant.id):
                await self.tenancy.add_member(tenant, user.id, self._role(assertion, tenant.id), via="sso")
            await self._touch(identity.id, assertion.email)
            return await self._start(assertion, user, tenant, ip=ip, user_agent=user_agent)
        email = self._require_email(assertion)
        if not covered:
            self.events.security("federated.domain_refused", ip=ip, data={"provider": assertion.provider})
            raise FederatedLoginRefusedError(
                "This email's domain does not sign in through this tenant's single sign-on."
            )
        existing = await self._by_email(email)
        if existing is not None:
            # A tenant's domains are not proven by DNS: its provider is trusted for the
            # tenant's own members only, never to take over an outside account by email.
            if not (await self._is_member(existing.id, tenant.id) and assertion.email_verified):
                raise self._exists(assertion, ip)
            if not existing.is_active:
                raise PermissionDeniedError("This account is disabled.")
            self._authorize(assertion, existing.id, ip=ip)
            await self._add_identity(existing.id, assertion)
            self._linked_audit(assertion, existing.id, tenant.id, via="email")
            await self._notify_linked(existing.id, assertion)
            return await self._start(assertion, existing, tenant, ip=ip, user_agent=user_agent, linked=True)
        self._authorize(assertion, None, ip=ip)
        user, _ = await self._create_user(assertion, tenant_name=None)
        try:
            await self.tenancy.add_member(tenant, user.id, self._role(assertion, tenant.id), via="sso")
        except BaseException:
            async with self.db.session() as session, session.begin():  # no half-made account
                orphan = await session.get(User, user.id)
                if orphan is not None:
                    await session.delete(orphan)
            raise
        self.events.audit(
            "user.registered", tenant_id=tenant.id, actor_id=user.id, data={"via": assertion.provider}
        )
        return await self._start(assertion, user, tenant, ip=ip, user_agent=user_agent, created=True)

    # -- linking while signed in ------------------------------------------------------ #

    async def link(
        self,
        assertion: Assertion,
        user_id: uuid.UUID,
        *,
        tenant_id: uuid.UUID | None,
        session_id: uuid.UUID | None = None,
        ip: str | None,
    ) -> UserIdentity:
        """Link the identity to the signed-in ``user_id`` (409 when another account holds it).

        ``session_id``, the session that asked for the link, must still be live: a
        link started with a token that has since been signed out (or revoked) fails.
        """
        if session_id is not None and session_id not in await self.sessions.live_session_ids(user_id):
            raise OidcError("The session that started this link has ended; sign in and link again.")
        known = await self._known(assertion)
        if known is not None:
            identity, user = known
            if user.id != user_id:
                self.events.security("federated.link_conflict", ip=ip, data={"provider": assertion.provider})
                raise ConflictError("This identity is already linked to another account.")
            await self._touch(identity.id, assertion.email)
            return identity
        async with self.db.session() as session:
            active = await session.scalar(select(User.is_active).where(User.id == user_id))
        if not active:
            raise PermissionDeniedError("This account is disabled.")
        self._authorize(assertion, user_id, ip=ip)
        identity = await self._add_identity(user_id, assertion)
        self._linked_audit(assertion, user_id, tenant_id, via="link")
        await self._notify_linked(user_id, assertion)
        return identity

    async def identities(self, user_id: uuid.UUID) -> list[UserIdentity]:
        """The user's linked identities, oldest first."""
        async with self.db.session() as session:
            rows = await session.scalars(
                select(UserIdentity).where(UserIdentity.user_id == user_id).order_by(UserIdentity.created_at)
            )
            return list(rows.all())

    async def unlink(
        self, user_id: uuid.UUID, identity_id: uuid.UUID, *, tenant_id: uuid.UUID | None
    ) -> None:
        """Remove one of the user's identities; 409 when it is their only way in, 404 when not theirs."""
        async with self.db.session() as session, session.begin():
            user = await session.get(User, user_id, with_for_update=True)  # serialises concurrent unlinks
            identity = await session.get(UserIdentity, identity_id)
            if user is None or identity is None or identity.user_id != user_id:
                raise NotFoundError("No such identity.")
            others = await session.scalar(
                select(func.count())
                .select_from(UserIdentity)
                .where(UserIdentity.user_id == user_id, UserIdentity.id != identity_id)
            )
            if not others and not is_usable_password(user.password_hash):
                raise ConflictError(
                    "This identity is your only way to sign in: set a password (password reset) "
                    "or link another identity first."
                )
            provider = identity.provider
            await session.delete(identity)
        self.events.audit(
            "identity.unlinked",
            tenant_id=tenant_id,
            actor_id=user_id,
            target=str(identity_id),
            data={"provider": provider},
        )

    # -- helpers ------------------------------------------------------------------- #

    async def _notify_linked(self, user_id: uuid.UUID, assertion: Assertion) -> None:
        """Tell the account's owner a sign-in method was added (a stolen session cannot add one silently)."""
        if self.send_mail is None:
            return
        async with self.db.session() as session:
            address = await session.scalar(select(User.email).where(User.id == user_id))
        if address is None:
            return
        await self.send_mail(
            Mail(
                to=address,
                subject="A sign-in method was added to your account",
                body=(
                    f"The identity provider {assertion.name!r} can now sign in to your account.\n"
                    "If this was not you, sign in, remove it from your linked identities and "
                    "change your password."
                ),
                kind="identity_linked",
            )
        )

    def _linked_audit(
        self, assertion: Assertion, user_id: uuid.UUID, tenant_id: uuid.UUID | None, *, via: str
    ) -> None:
        self.events.audit(
            "identity.linked",
            tenant_id=tenant_id,
            actor_id=user_id,
            data={"provider": assertion.provider, "via": via},
        )

    @staticmethod
    def _require_email(assertion: Assertion) -> str:
        if assertion.email is None:
            raise OidcError("The identity provider did not share an email address (scope 'email').")
        return assertion.email

    @staticmethod
    def _tenant_name(assertion: Assertion) -> str:
        for claim in ("name", "preferred_username", "given_name"):
            value = assertion.claims.get(claim)
            if isinstance(value, str) and value.strip():
                return value.strip()[:200]
        assert assertion.email is not None
        return assertion.email.partition("@")[0][:200] or "My tenant"
