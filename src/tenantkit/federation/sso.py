"""``TenantSsoService``: a tenant's own single sign-on provider, its email domains and their enforcement.

One configuration per tenant (the ``tenant_sso`` row) holds the OpenID Connect
issuer, the client id, the client secret sealed with AES-GCM
(:class:`tenantkit.sealing.Sealer`, associated data bound to the tenant id, so
a sealed blob copied onto another tenant's row does not open), the email
domains the provider vouches for and whether password sign-in is refused for
them (``enforce``).

Domains are claimed in the global ``sso_domains`` table (primary key: the
domain), kept in step with the configuration in the same transaction: a domain
belongs to at most one tenant, whatever the races (a concurrent claim loses
on the primary key and answers 409). Well-known public mail domains
(:data:`PUBLIC_MAIL_DOMAINS`) are never claimable.

The secret is never returned, logged or written to an audit row; it leaves
the service only as :class:`~tenantkit.federation.base.TenantProvider` for
the sign-in flow (:meth:`TenantSsoService.for_slug`).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import idna
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tenantkit.context import TenantRef
from tenantkit.db.base import utcnow
from tenantkit.db.engine import Database
from tenantkit.db.models import SsoDomain, TenantSso
from tenantkit.db.scoping import tenant_scope
from tenantkit.errors import ConflictError, NotFoundError, ValidationError
from tenantkit.events import Events
from tenantkit.federation.base import TenantProvider
from tenantkit.normalize import normalize_slug
from tenantkit.sealing import Sealer
from tenantkit.security.ssrf import UnsafeURLError, validate_url
from tenantkit.tenancy.core import lock_tenant
from tenantkit.tenancy.directory import TenantDirectory

__all__ = [
    "MAX_DOMAINS",
    "PROTOCOLS",
    "PUBLIC_MAIL_DOMAINS",
    "SsoConfig",
    "TenantSsoService",
    "email_domain",
    "normalize_domain",
]

logger = logging.getLogger("tenantkit.federation")

#: The most email domains one tenant's single sign-on may claim.
MAX_DOMAINS = 50
#: Protocols a configuration may name; ``"saml"`` is reserved for later.
PROTOCOLS = ("oidc",)
#: The longest client secret accepted (UTF-8 bytes); the sealed form fits ``tenant_sso`` comfortably.
MAX_SECRET_BYTES = 512
#: Mail domains anyone can get an address at: claiming one would capture strangers' sign-ins.
PUBLIC_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "yandex.com",
        "mail.com",
        "qq.com",
        "163.com",
    }
)

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def normalize_domain(value: str) -> str:
    """An email domain as stored: IDNA (UTS #46) ASCII form, lower case, no trailing dot.

    Raises:
        ValueError: not a host name with at least one dot (IP addresses,
            wildcards, ports, paths and ``user@`` parts are refused); the
            message says why.
    """
    text = value.strip()
    if text.endswith("."):
        text = text[:-1]
    if not text:
        raise ValueError("must not be empty")
    if "*" in text:
        raise ValueError("wildcards are not allowed; list each domain")
    if any(ch in text for ch in "@/:[]\\") or any(ch.isspace() for ch in text):
        raise ValueError("must be a bare domain name such as example.com")
    try:
        ascii_form = idna.encode(text, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        raise ValueError("is not a valid domain name") from None
    ascii_form = ascii_form.lower()
    labels = ascii_form.split(".")
    if len(labels) < 2:
        raise ValueError("must have at least one dot (example.com)")
    if len(ascii_form) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError("is not a valid domain name")
    if labels[-1].isdigit():
        raise ValueError("IP addresses are not allowed")
    return ascii_form


def email_domain(email: str) -> str:
    """The normalised domain of ``email`` (lower case when it does not normalise)."""
    domain = email.rpartition("@")[2]
    try:
        return normalize_domain(domain)
    except ValueError:
        return domain.strip().lower()


@dataclass(frozen=True, slots=True)
class SsoConfig:
    """A tenant's single sign-on configuration as shown to its administrators (no secret)."""

    tenant_id: uuid.UUID
    protocol: str
    issuer: str
    client_id: str
    domains: tuple[str, ...]
    enforce: bool
    has_client_secret: bool
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``GET /tenant/sso``."""
        return {
            "protocol": self.protocol,
            "issuer": self.issuer,
            "client_id": self.client_id,
            "domains": list(self.domains),
            "enforce": self.enforce,
            "has_client_secret": self.has_client_secret,
            "updated_at": self.updated_at.isoformat(),
        }


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _config(row: TenantSso) -> SsoConfig:
    return SsoConfig(
        tenant_id=row.tenant_id,
        protocol=row.protocol,
        issuer=row.issuer,
        client_id=row.client_id,
        domains=tuple(row.domains or ()),
        enforce=bool(row.enforce),
        has_client_secret=bool(row.client_secret_sealed),
        updated_at=_aware(row.updated_at),
    )


def _context(tenant_id: uuid.UUID) -> bytes:
    """Associated data of a tenant's sealed client secret: it opens on that tenant's row only."""
    return b"tenantkit:tenant-sso:" + tenant_id.bytes


def _error(loc: Sequence[str | int], msg: str, type_: str = "value_error") -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg, "type": type_}


class TenantSsoService:
    """Tenants' single sign-on configurations; implements :class:`~tenantkit.federation.base.TenantProviders`.

    Methods raise :mod:`tenantkit.errors` exceptions.

    Args:
        database: Where ``tenant_sso`` and ``sso_domains`` live.
        directory: Finds tenants by slug (cached, invalidated on suspension).
        sealer: Seals client secrets (a key of their own, from ``TENANTKIT_ENCRYPTION_KEY``
            or derived from the signing key).
        events: Audit rows (``tenant.sso_configured``, ``tenant.sso_removed``).
        allow_hosts: Issuer hosts exempt from the SSRF address checks
            (``TENANTKIT_SSO_ALLOW_HOSTS``).
        allow_http: Accept ``http://`` issuers (``TENANTKIT_ENV=development`` only).
    """

    def __init__(
        self,
        *,
        database: Database,
        directory: TenantDirectory,
        sealer: Sealer,
        events: Events,
        allow_hosts: Iterable[str] = (),
        allow_http: bool = False,
    ) -> None:
        self.database = database
        self.directory = directory
        self.sealer = sealer
        self.events = events
        self.allow_hosts = tuple(allow_hosts)
        self.allow_http = allow_http

    # ------------------------------------------------------------------ #
    # Validation
    # ------------------------------------------------------------------ #

    def check_issuer(self, issuer: str) -> str:
        """``issuer`` when it is an https URL (http only in development) passing the SSRF guard.

        Raises:
            ValueError: why it is refused (never repeating the URL).
        """
        try:
            checked = validate_url(issuer, self.allow_hosts)
        except UnsafeURLError as exc:
            raise ValueError("issuer refused: " + str(exc).partition(": ")[2]) from None
        if checked.scheme != "https" and not self.allow_http:
            raise ValueError("the issuer must be an https URL")
        if "?" in issuer or "#" in issuer:
            raise ValueError("the issuer must not have a query or fragment")
        return issuer

    def _checked_domains(self, domains: Sequence[str], errors: list[dict[str, Any]]) -> list[str]:
        result: list[str] = []
        if not domains:
            errors.append(_error(["domains"], "list at least one email domain"))
        if len(domains) > MAX_DOMAINS:
            errors.append(_error(["domains"], f"at most {MAX_DOMAINS} domains"))
            return result
        for index, raw in enumerate(domains):
            try:
                domain = normalize_domain(raw)
            except ValueError as exc:
                errors.append(_error(["domains", index], str(exc)))
                continue
            if domain in PUBLIC_MAIL_DOMAINS:
                errors.append(
                    _error(
                        ["domains", index],
                        "public mail domains cannot be claimed for single sign-on",
                        "public_mail_domain",
                    )
                )
                continue
            if domain not in result:
                result.append(domain)
        return result

    # ------------------------------------------------------------------ #
    # Configuration
    # ------------------------------------------------------------------ #

    async def put(
        self,
        tenant: TenantRef,
        *,
        issuer: str,
        client_id: str,
        client_secret: str | None,
        domains: Sequence[str],
        enforce: bool,
        protocol: str = "oidc",
        actor_id: uuid.UUID | None = None,
    ) -> SsoConfig:
        """Create or replace ``tenant``'s configuration and its domain claims.

        ``client_secret=None`` keeps the stored secret (422 when there is none yet).

        Raises:
            ValidationError: a bad protocol, issuer, secret or domain (422, one entry each).
            ConflictError: a domain is claimed by another tenant (409, ``domains`` lists them).
        """
        errors: list[dict[str, Any]] = []
        if protocol not in PROTOCOLS:
            errors.append(_error(["protocol"], "only 'oidc' is supported ('saml' is reserved)"))
        try:
            self.check_issuer(issuer)
        except ValueError as exc:
            errors.append(_error(["issuer"], str(exc)))
        if client_secret is not None and not 1 <= len(client_secret.encode()) <= MAX_SECRET_BYTES:
            errors.append(_error(["client_secret"], f"must be 1 to {MAX_SECRET_BYTES} bytes"))
        claimed = self._checked_domains(domains, errors)
        if errors:
            raise ValidationError(errors)

        now = utcnow()
        with tenant_scope(tenant.id):
            try:
                async with self.database.transaction() as uow:
                    session = uow.session
                    await self._lock_tenant(session, tenant.id)
                    row = await session.get(TenantSso, tenant.id)
                    if row is None and client_secret is None:
                        raise ValidationError(
                            [_error(["client_secret"], "required when configuring single sign-on", "missing")]
                        )
                    await self._claim(session, tenant.id, claimed)
                    if row is None:
                        row = TenantSso(tenant_id=tenant.id, created_at=now)
                        session.add(row)
                    row.protocol = protocol
                    row.issuer = issuer
                    row.client_id = client_id
                    row.domains = list(claimed)
                    row.enforce = enforce
                    row.updated_at = now
                    if client_secret is not None:
                        row.client_secret_sealed = self.sealer.seal(
                            client_secret.encode(), context=_context(tenant.id)
                        )
                    await session.flush()
                    config = _config(row)
                    data = {
                        "protocol": protocol,
                        "issuer": issuer,
                        "client_id": client_id,
                        "domains": list(claimed),
                        "enforce": enforce,
                        "client_secret_changed": client_secret is not None,
                    }

                    async def effects() -> None:
                        self.events.audit(
                            "tenant.sso_configured", tenant_id=tenant.id, actor_id=actor_id, data=data
                        )

                    uow.after_commit(effects)
            except IntegrityError:
                # A concurrent claim of the same domain by another tenant committed first.
                raise ConflictError(
                    "An email domain is already claimed by another tenant.",
                    domains=await self._taken(tenant.id, claimed),
                ) from None
        return config

    async def _taken(self, tenant_id: uuid.UUID, domains: list[str]) -> list[str]:
        """Which of ``domains`` another tenant holds now."""
        async with self.database.session() as session:
            return await self._others(session, tenant_id, domains)

    @staticmethod
    async def _others(session: AsyncSession, tenant_id: uuid.UUID, domains: list[str]) -> list[str]:
        query = select(SsoDomain.domain).where(
            SsoDomain.domain.in_(domains), SsoDomain.tenant_id != tenant_id
        )
        return sorted((await session.scalars(query)).all())

    async def _lock_tenant(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        """Serialise one tenant's configuration changes (the tenancy lock)."""
        await lock_tenant(session, tenant_id, dialect=self.database.dialect)

    async def _claim(self, session: AsyncSession, tenant_id: uuid.UUID, domains: list[str]) -> None:
        """Make ``sso_domains`` hold exactly ``domains`` for ``tenant_id`` (409: another tenant owns one)."""
        taken = await self._others(session, tenant_id, domains)
        if taken:
            raise ConflictError("An email domain is already claimed by another tenant.", domains=taken)
        held = set(
            (await session.scalars(select(SsoDomain.domain).where(SsoDomain.tenant_id == tenant_id))).all()
        )
        dropped = held - set(domains)
        if dropped:
            await session.execute(
                delete(SsoDomain)
                .where(SsoDomain.tenant_id == tenant_id, SsoDomain.domain.in_(dropped))
                .execution_options(synchronize_session=False)
            )
        # Sorted inserts: two tenants claiming overlapping sets wait on each other in
        # the same order (one loses on the primary key), never deadlock.
        for domain in sorted(set(domains) - held):
            session.add(SsoDomain(domain=domain, tenant_id=tenant_id))
            await session.flush()

    async def get(self, tenant_id: uuid.UUID) -> SsoConfig | None:
        """The tenant's configuration (no secret), or ``None``."""
        with tenant_scope(tenant_id):
            async with self.database.session() as session:
                row = await session.get(TenantSso, tenant_id)
                return _config(row) if row is not None else None

    async def delete(self, tenant_id: uuid.UUID, *, actor_id: uuid.UUID | None = None) -> None:
        """Remove the tenant's configuration and release its domains (404 when there is none)."""
        with tenant_scope(tenant_id):
            async with self.database.transaction() as uow:
                session = uow.session
                await self._lock_tenant(session, tenant_id)
                row = await session.get(TenantSso, tenant_id)
                if row is None:
                    raise NotFoundError("This tenant has no single sign-on configuration.")
                await session.execute(
                    delete(SsoDomain)
                    .where(SsoDomain.tenant_id == tenant_id)
                    .execution_options(synchronize_session=False)
                )
                await session.delete(row)

                async def effects() -> None:
                    self.events.audit("tenant.sso_removed", tenant_id=tenant_id, actor_id=actor_id)

                uow.after_commit(effects)

    # ------------------------------------------------------------------ #
    # What the sign-in flows ask
    # ------------------------------------------------------------------ #

    async def for_slug(self, slug: str) -> TenantProvider | None:
        """The active tenant ``slug``'s OpenID Connect provider with its secret unsealed, or ``None``.

        ``None`` also when the tenant is unknown or suspended, or when the sealed
        secret does not open (the encryption key changed, or the blob was moved
        from another tenant's row): fail closed, logged without the secret.
        """
        try:
            wanted = normalize_slug(slug)
        except ValueError:
            return None
        tenant = await self.directory.find(wanted)
        if tenant is None or tenant.slug != wanted or tenant.status != "active":
            return None
        with tenant_scope(tenant.id):
            async with self.database.session() as session:
                row = await session.get(TenantSso, tenant.id)
                if row is None or row.protocol != "oidc":
                    return None
                issuer, client_id, sealed = row.issuer, row.client_id, row.client_secret_sealed
                domains, enforce = tuple(row.domains or ()), bool(row.enforce)
        secret = self.sealer.open(sealed, context=_context(tenant.id))
        if secret is None:
            logger.warning(
                "a tenant's SSO client secret does not open (encryption key changed or row tampered)",
                extra={"tenant_id": str(tenant.id)},
            )
            return None
        return TenantProvider(
            tenant_id=tenant.id,
            tenant_slug=tenant.slug,
            issuer=issuer,
            client_id=client_id,
            client_secret=secret.decode(),
            domains=domains,
            enforce=enforce,
        )

    async def password_login_allowed(self, tenant_id: uuid.UUID, email: str) -> bool:
        """False when ``tenant_id`` enforces its single sign-on for ``email``'s domain.

        One indexed query on the primary (``sso_domains`` by primary key joined to
        the tenant's configuration): a change is seen by the next sign-in on every instance.
        """
        domain = email_domain(email)
        with tenant_scope(tenant_id):
            async with self.database.session() as session:
                enforced = await session.scalar(
                    select(TenantSso.enforce)
                    .join(SsoDomain, SsoDomain.tenant_id == TenantSso.tenant_id)
                    .where(
                        SsoDomain.domain == domain,
                        SsoDomain.tenant_id == tenant_id,
                        TenantSso.tenant_id == tenant_id,
                    )
                )
        return not enforced
