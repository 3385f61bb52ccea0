"""What the sign-in flows need from a tenant's single sign-on configuration.

:class:`TenantProvider` is a tenant's identity provider as the OpenID Connect
flow uses it (secret unsealed, in memory only); :class:`TenantProviders` finds
one by tenant slug. ``tenantkit.federation.sso`` implements it over the
``tenant_sso`` table; the flows in ``tenantkit.federation`` depend only on this
protocol.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["TenantProvider", "TenantProviders"]


@dataclass(frozen=True, slots=True)
class TenantProvider:
    """A tenant's own OpenID Connect provider and the email domains it vouches for."""

    tenant_id: uuid.UUID
    tenant_slug: str
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    domains: tuple[str, ...] = ()
    enforce: bool = False

    def covers(self, email: str) -> bool:
        """Whether ``email``'s domain is one of the tenant's verified domains."""
        domain = email.rpartition("@")[2].lower()
        return domain in self.domains


class TenantProviders(Protocol):
    """Looks up tenants' single sign-on providers."""

    async def for_slug(self, slug: str) -> TenantProvider | None:
        """The active tenant ``slug``'s provider, or ``None`` when it has none (or no such tenant)."""
        ...
