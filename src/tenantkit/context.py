"""Per-request (and per-job) state in ``contextvars``.

The middleware sets these; endpoints, the ORM scoping, logs and jobs read
them. ``tenant_context()`` and ``principal_context()`` set a value for a block
and restore the previous one afterwards, which is how jobs and scripts enter a
tenant explicitly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ApiKeyRef",
    "Principal",
    "TenantRef",
    "current_client_ip",
    "current_principal",
    "current_request_id",
    "current_tenant",
    "current_tenant_id",
    "principal_context",
    "request_id_context",
    "tenant_context",
]


@dataclass(frozen=True, slots=True)
class TenantRef:
    """The tenant a request or job runs in."""

    id: uuid.UUID
    slug: str
    name: str = ""
    status: str = "active"
    #: Members must have a second factor to use anything but their profile and 2FA enrolment.
    require_mfa: bool = False


@dataclass(frozen=True, slots=True)
class ApiKeyRef:
    """The API key a request authenticated with: it acts in its tenant with ``scopes``."""

    id: uuid.UUID
    name: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the verified claims of an access token.

    Attributes:
        user_id: The ``sub`` claim.
        tenant_id: The tenant the token is bound to (``tid``).
        session_id: The session (refresh-token family) the token belongs to (``sid``).
        role: The role name at issue time; the live role is re-read per request.
        claims: Every claim of the token, including plugin-added ones.
        api_key: Set when the credential is an API key (``user_id`` is then its creator,
            whose permissions narrow the key's scopes at every request).
    """

    user_id: uuid.UUID
    tenant_id: uuid.UUID
    session_id: uuid.UUID
    role: str
    token_id: str = ""
    expires_at: float = 0.0
    claims: dict[str, Any] = field(default_factory=dict, compare=False)
    api_key: ApiKeyRef | None = None

    @property
    def impersonator_id(self) -> uuid.UUID | None:
        """Who really acts, when this is an impersonation token (the ``act`` claim, RFC 8693)."""
        act = self.claims.get("act")
        if isinstance(act, dict) and act.get("sub"):
            return uuid.UUID(str(act["sub"]))
        return None

    @property
    def read_only(self) -> bool:
        """An impersonation token limited to reading (``GET``/``HEAD``/``OPTIONS``)."""
        return bool(self.claims.get("ro")) and self.impersonator_id is not None


_tenant: ContextVar[TenantRef | None] = ContextVar("tenantkit_tenant", default=None)
_principal: ContextVar[Principal | None] = ContextVar("tenantkit_principal", default=None)
_request_id: ContextVar[str | None] = ContextVar("tenantkit_request_id", default=None)
_client_ip: ContextVar[str | None] = ContextVar("tenantkit_client_ip", default=None)


def current_tenant() -> TenantRef | None:
    """The tenant of the running request or job, or ``None``."""
    return _tenant.get()


def current_tenant_id() -> uuid.UUID | None:
    """The id of the current tenant, or ``None``."""
    tenant = _tenant.get()
    return tenant.id if tenant is not None else None


def current_principal() -> Principal | None:
    """The authenticated principal of the running request, or ``None``."""
    return _principal.get()


def current_request_id() -> str | None:
    """The request id of the running request (or the one that queued a job)."""
    return _request_id.get()


def current_client_ip() -> str | None:
    """The client address of the running request (proxies honoured per settings), or ``None``."""
    return _client_ip.get()


@contextmanager
def tenant_context(tenant: TenantRef | None) -> Iterator[TenantRef | None]:
    """Run a block inside ``tenant`` (or explicitly outside any tenant with ``None``)."""
    token = _tenant.set(tenant)
    try:
        yield tenant
    finally:
        _tenant.reset(token)


@contextmanager
def principal_context(principal: Principal | None) -> Iterator[Principal | None]:
    """Run a block as ``principal``."""
    token = _principal.set(principal)
    try:
        yield principal
    finally:
        _principal.reset(token)


@contextmanager
def request_id_context(request_id: str | None) -> Iterator[str | None]:
    """Run a block with ``request_id`` as the current request id."""
    token = _request_id.set(request_id)
    try:
        yield request_id
    finally:
        _request_id.reset(token)
