"""Production hardening: body-size limit, security headers, trusted hosts, CORS, rate limiting.

``TenantKit.middleware`` installs all of it from the settings; the pieces are
usable on their own.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware import Middleware

from tenantkit.security.body_limit import BodySizeLimitMiddleware
from tenantkit.security.cors import CORS_EXPOSE_HEADERS, CORSMiddleware
from tenantkit.security.decorators import rate_limit
from tenantkit.security.headers import DEFAULT_CSP, HSTS, SecurityHeadersMiddleware
from tenantkit.security.hosts import TrustedHostMiddleware
from tenantkit.security.middleware import RateLimitMiddleware
from tenantkit.security.ratelimit import (
    RateLimiter,
    RateLimitResult,
    account_subject,
    limit_headers,
    rate_key,
)
from tenantkit.security.request_headers import EmptyHeaderMiddleware
from tenantkit.settings import Settings

__all__ = [
    "CORS_EXPOSE_HEADERS",
    "DEFAULT_CSP",
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


def security_middleware(settings: Settings, *, body_limit_exempt: Sequence[str] = ()) -> list[Middleware]:
    """Headers, trusted hosts, CORS, the empty tenant header's refusal and the body-size limit.

    Outermost first, from ``settings``. ``body_limit_exempt``: path prefixes
    that check their own size (signed local uploads).
    """
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
    stack.append(Middleware(EmptyHeaderMiddleware, headers=(settings.tenant_header,)))
    stack.append(
        Middleware(
            BodySizeLimitMiddleware,
            max_body_bytes=settings.max_body_bytes,
            exempt_prefixes=list(body_limit_exempt),
        )
    )
    return stack


def rate_limit_middleware(settings: Settings, limiter: RateLimiter) -> Middleware:
    """The rate-limit middleware with ``limiter`` and the budgets (install it after authentication)."""
    return Middleware(
        RateLimitMiddleware,
        limiter=limiter,
        auth=settings.rate_limit_auth,
        api=settings.rate_limit_api,
        tenant=settings.rate_limit_tenant,
        tenant_prefix=settings.tenant_path_prefix if "path" in settings.tenant_resolvers else None,
    )
