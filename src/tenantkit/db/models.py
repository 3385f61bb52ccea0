"""tenantkit's own tables.

Global (reference) tables: ``tenants``, ``users``, ``auth_sessions``,
``refresh_tokens``, ``password_reset_tokens``, and ``memberships`` (read
across tenants by design: "which tenants may this user enter" at login and
token refresh). Tenant-owned tables (``roles``, ``invitations``,
``audit_events``) are :class:`~tenantkit.tenancy.TenantOwned`: the ORM filters
them to the current tenant and row-level security guards them on PostgreSQL.
They carry ``tenant_id`` first in their primary key and in every unique
constraint (the rule Citus imposes on tables distributed by ``tenant_id``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tenantkit.db.base import Base, TenantOwned, TimestampMixin, new_id, utcnow

__all__ = [
    "ApiKey",
    "AuditEvent",
    "AuthSession",
    "Invitation",
    "Membership",
    "PasswordResetToken",
    "RecoveryCode",
    "RefreshToken",
    "Role",
    "ScimToken",
    "ScimUser",
    "SsoDomain",
    "Tenant",
    "TenantSso",
    "User",
    "UserIdentity",
    "UserTOTP",
]


class Tenant(TimestampMixin, Base):
    """A tenant (an organisation, a brand...)."""

    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")
    open_signup: Mapped[bool] = mapped_column(default=False)
    require_mfa: Mapped[bool] = mapped_column(default=False)


class User(TimestampMixin, Base):
    """A global identity; access to tenants goes through memberships."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(128))
    is_active: Mapped[bool] = mapped_column(default=True)
    is_superadmin: Mapped[bool] = mapped_column(default=False)
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)
    #: When the user proved they read mail at ``email`` (a confirmed link, a
    #: password reset, an accepted invitation, or an identity provider asserting
    #: ``email_verified``); linking a federated identity by email requires it.
    email_verified_at: Mapped[datetime | None] = mapped_column(default=None)


class Membership(TimestampMixin, Base):
    """A user's role in one tenant."""

    __tablename__ = "memberships"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(64))
    last_used_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_memberships_user_id", "user_id"),)


class Role(TenantOwned, TimestampMixin, Base):
    """A tenant's custom role: a name and a set of permission codes (wildcards allowed)."""

    __tablename__ = "roles"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)


class AuthSession(Base):
    """A signed-in device: one refresh-token family, bound to one tenant."""

    __tablename__ = "auth_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_agent: Mapped[str] = mapped_column(String(512), default="")
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    #: Set on an impersonation session: who acts as the user, why, and whether only to read.
    impersonator_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    impersonation_reason: Mapped[str | None] = mapped_column(String(500), default=None)
    read_only: Mapped[bool] = mapped_column(default=False)


class RefreshToken(Base):
    """One refresh token of a family, stored as its SHA-256 digest only."""

    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    spent_at: Mapped[datetime | None] = mapped_column(default=None)
    successor_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    #: This token (a JSON box ``{"rt": ...}``), sealed under the *parent* token's key:
    #: what a duplicate refresh of the parent receives within the grace window.
    sealed_pair: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)


class PasswordResetToken(Base):
    """A single-use password-reset token (digest only)."""

    __tablename__ = "password_reset_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class UserTOTP(Base):
    """A user's TOTP (RFC 6238) second factor: the secret, encrypted at rest."""

    __tablename__ = "user_totp"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[bytes] = mapped_column(LargeBinary(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)
    #: The newest 30-second step a code was accepted for: older or equal ones are replays.
    last_step: Mapped[int] = mapped_column(BigInteger, default=0)


class RecoveryCode(Base):
    """A single-use recovery code of a user's second factor (keyed digest only)."""

    __tablename__ = "recovery_codes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class Invitation(TenantOwned, Base):
    """An invitation to join a tenant with a role; single use, bound to an email."""

    __tablename__ = "invitations"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(64))
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    invited_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (UniqueConstraint("tenant_id", "digest"),)


class ApiKey(TenantOwned, Base):
    """A tenant's API key (service account): ``tk_<public_id>_<secret>``, stored as a keyed digest."""

    __tablename__ = "api_keys"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    public_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_by: Mapped[uuid.UUID] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (UniqueConstraint("tenant_id", "public_id"), Index("ix_api_keys_public_id", "public_id"))


class AuditEvent(TenantOwned, Base):
    """A security event. Platform events (no tenant) use the nil UUID as tenant."""

    __tablename__ = "audit_events"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    action: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    target: Mapped[str | None] = mapped_column(String(200), default=None)
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    request_id: Mapped[str | None] = mapped_column(String(128), default=None)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The tenant's hash chain (tenantkit.audit.chain), set by the batch writer;
    # NULL only on rows an older tenantkit wrote after tk0007 (``audit verify`` flags them).
    seq: Mapped[int | None] = mapped_column(BigInteger, default=None)
    prev_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    hash: Mapped[str | None] = mapped_column(String(64), default=None)

    __table_args__ = (
        Index("ix_audit_events_tenant_id_created_at", "tenant_id", "created_at"),
        Index("ix_audit_events_tenant_id_seq", "tenant_id", "seq", unique=True),
    )


class UserIdentity(Base):
    """A federated identity (an OpenID Connect ``iss`` + ``sub``) linked to a user.

    ``provider`` names where it came from: ``oidc:<name>`` for a platform
    provider, ``sso:<tenant id>`` for a tenant's own single sign-on.
    """

    __tablename__ = "user_identities"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(100))
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        UniqueConstraint("issuer", "subject"),
        Index("ix_user_identities_user_id", "user_id"),
    )


class TenantSso(TenantOwned, TimestampMixin, Base):
    """A tenant's own single sign-on provider (OpenID Connect today; ``protocol`` leaves room for SAML).

    The client secret is sealed (AES-GCM, :class:`tenantkit.sealing.Sealer`) and never returned.
    """

    __tablename__ = "tenant_sso"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    protocol: Mapped[str] = mapped_column(String(16), default="oidc")
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(500))
    client_secret_sealed: Mapped[bytes] = mapped_column(LargeBinary(1024))
    domains: Mapped[list[str]] = mapped_column(JSON, default=list)
    enforce: Mapped[bool] = mapped_column(default=False)


class SsoDomain(Base):
    """An email domain claimed by one tenant's single sign-on (global: one owner per domain)."""

    __tablename__ = "sso_domains"

    domain: Mapped[str] = mapped_column(String(253), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))

    __table_args__ = (Index("ix_sso_domains_tenant_id", "tenant_id"),)


class ScimToken(TenantOwned, Base):
    """A tenant's SCIM bearer token: ``scim_<public_id>_<secret>``, stored as a keyed digest."""

    __tablename__ = "scim_tokens"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    public_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200), default="")
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        UniqueConstraint("tenant_id", "public_id"),
        Index("ix_scim_tokens_public_id", "public_id"),
    )


class ScimUser(TenantOwned, TimestampMixin, Base):
    """A user as a tenant's directory provisioned them over SCIM.

    The membership is the access; this row keeps what SCIM needs besides it:
    the directory's ``externalId`` and, while ``active`` is false (the
    membership is then removed), the role to restore on reactivation.
    """

    __tablename__ = "scim_users"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(500), default=None)
    display_name: Mapped[str | None] = mapped_column(String(500), default=None)
    active: Mapped[bool] = mapped_column(default=True)
    role: Mapped[str] = mapped_column(String(64), default="USER")
