"""Production hardening: body-size limit, security headers, trusted hosts, CORS, rate limiting.

``TenantKit.middleware`` installs all of it from the settings; the pieces are
usable on their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.middleware import Middleware

from tenantkit.security.body_limit import BodySizeLimitMiddleware
from tenantkit.security.cors import CORS_EXPOSE_HEADERS, CORSMiddleware
from tenantkit.security.decorators import rate_limit
from tenantkit.security.headers import DEFAULT_CSP, HSTS, SecurityHeadersMiddleware
from tenantkit.security.hosts import TrustedHostMiddleware
from tenantkit.security.middleware import DEFAULT_EXEMPT_PATHS, RateLimitMiddleware
from tenantkit.security.ratelimit import (
    RateLimiter,
    RateLimitResult,
    account_subject,
    limit_headers,
    rate_key,
)
from tenantkit.security.request_headers import EmptyHeaderMiddleware

if TYPE_CHECKING:
    from tenantkit.kit import TenantKit

__all__ = [
    "CORS_EXPOSE_HEADERS",
    "DEFAULT_CSP",
    "DEFAULT_EXEMPT_PATHS",
    "HSTS",
    "BodySizeLimitMiddleware",
    "CORSMiddleware",
    "EmptyHeaderMiddleware",
    "RateLimitMiddleware",
    "RateLimitResult",
    "RateLimiter",
    "SecurityHeadersMiddleware",
    "TrustedHostMiddleware",
    "account_subject",
    "limit_headers",
    "rate_key",
    "rate_limit",
    "rate_limit_middleware",
    "security_middleware",
]


def security_middleware(kit: TenantKit) -> list[Middleware]:
    """Headers, trusted hosts, CORS, empty tenant header refusal and the body-size limit, outermost first."""
    settings = kit.settings
    stack = [Middleware(SecurityHeadersMiddleware, hsts=not settings.is_development)]
    if settings.allowed_hosts and "*" not in settings.allowed_hosts:
        stack.append(Middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts))
    if settings.cors_origins:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_headers=("Authorization", "Content-Type", settings.tenant_header, "X-Request-ID"),
            )
        )
    from tenantkit.files import LocalStorage

    # Local uploads check their signed, declared size themselves.
    exempt = [kit.storage.base_url_path] if isinstance(kit.storage, LocalStorage) else []
    stack.append(Middleware(EmptyHeaderMiddleware, headers=(settings.tenant_header,)))
    stack.append(
        Middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes, exempt_prefixes=exempt)
    )
    return stack


def rate_limit_middleware(kit: TenantKit) -> Middleware:
    """The rate-limit middleware with the kit's limiter and budgets (install it after authentication)."""
    settings = kit.settings
    return Middleware(
        RateLimitMiddleware,
        limiter=kit.rate_limiter,
        auth=settings.rate_limit_auth,
        api=settings.rate_limit_api,
        tenant=settings.rate_limit_tenant,
        tenant_prefix=settings.tenant_path_prefix if "path" in settings.tenant_resolvers else None,
    )
