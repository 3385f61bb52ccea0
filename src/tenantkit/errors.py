"""Exceptions raised by tenantkit and their RFC 9457 problem+json rendering.

The tree (every class is importable from ``tenantkit``)::

    TenantKitError
    ├── ConfigurationError          bad settings; raised at start, never per request
    ├── MissingDependencyError      an optional extra is not installed
    └── ProblemError                an error with an HTTP meaning (problem+json)
        ├── BadRequestError             400 malformed JSON, invalid one-time token
        │   └── OidcError               a federated sign-in could not be completed safely
        ├── UnsupportedMediaTypeError   415
        ├── PayloadTooLargeError        413
        ├── ValidationError             422, one entry per offending field
        ├── AuthenticationError         401 (+ WWW-Authenticate: Bearer)
        │   ├── InvalidTokenError
        │   ├── ExpiredTokenError
        │   └── TokenReuseError
        ├── PermissionDeniedError       403
        │   ├── MfaEnrollmentRequiredError  the tenant requires 2FA the caller lacks
        │   ├── SsoRequiredError        the tenant signs this user in through its own SSO only
        │   └── FederatedLoginRefusedError  a plugin or the tenant's domains refused a federated sign-in
        ├── TenantError
        │   ├── TenantNotFoundError     404
        │   ├── TenantRequiredError     400
        │   └── TenantForbiddenError    403 (suspended, or not bound to the token)
        ├── NotFoundError               404
        ├── ConflictError               409
        │   └── AccountExistsError      an account has this email; link the identity while signed in
        ├── AccountLockedError          423 (+ Retry-After)
        ├── RateLimitedError            429 (+ Retry-After)
        └── ServiceUnavailableError     503

Scoping failures inside the ORM raise ``TenantScopeError`` (a ``RuntimeError``
subclass, not a ``ProblemError``): they are programming errors and answer 500.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import orjson
from starlette.responses import Response

PROBLEM_CONTENT_TYPE = "application/problem+json"

__all__ = [
    "AccountExistsError",
    "AccountLockedError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ConflictError",
    "ExpiredTokenError",
    "FederatedLoginRefusedError",
    "InvalidTokenError",
    "MfaEnrollmentRequiredError",
    "MissingDependencyError",
    "NotFoundError",
    "OidcError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "ProblemError",
    "RateLimitedError",
    "ServiceUnavailableError",
    "SsoRequiredError",
    "TenantError",
    "TenantForbiddenError",
    "TenantKitError",
    "TenantNotFoundError",
    "TenantRequiredError",
    "TenantScopeError",
    "TokenReuseError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "problem_response",
]


class TenantKitError(Exception):
    """Root of every exception tenantkit raises on purpose."""


class ConfigurationError(TenantKitError):
    """The settings are invalid; the message lists every bad value."""


class MissingDependencyError(TenantKitError, ImportError):
    """A feature needs an optional extra, e.g. ``pip install 'tenantkit[redis]'``."""

    def __init__(self, extra: str, feature: str = "") -> None:
        what = f"{feature} needs" if feature else "this feature needs"
        super().__init__(f"{what} the optional extra: pip install 'tenantkit[{extra}]'")


class TenantScopeError(RuntimeError):
    """A tenant-scoped model was queried or written without a matching tenant in context."""


class ProblemError(TenantKitError):
    """An error that maps to an HTTP status and renders as problem+json.

    Args:
        detail: Human-readable explanation for this occurrence.
        headers: Extra response headers (``Retry-After``, ``WWW-Authenticate``...).
        **extensions: Extra members of the problem document.
    """

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"
    type_slug: ClassVar[str] = "about:blank"
    default_headers: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        self.detail = detail or self.title
        self.headers = {**self.default_headers, **(headers or {})}
        self.extensions = extensions
        super().__init__(self.detail)

    def to_response(self, *, instance: str | None = None) -> Response:
        """Render this error as an RFC 9457 ``application/problem+json`` response."""
        return problem_response(
            self.status,
            self.detail,
            title=self.title,
            type_=self.type_slug,
            headers=self.headers,
            instance=instance,
            **self.extensions,
        )


#: Problem types are URIs under this base (RFC 9457 §3.1.1): ``<base><slug>``,
#: e.g. ``https://tenantkit.readthedocs.io/problems/token-reuse``; the slug is
#: the stable part a client matches on (the errors page lists them).
PROBLEM_TYPE_BASE = "https://tenantkit.readthedocs.io/problems/"


def _problem_type(slug: str) -> str:
    if slug == "about:blank" or ":" in slug:
        return slug
    return f"{PROBLEM_TYPE_BASE}{slug}"


class BadRequestError(ProblemError):
    status, title, type_slug = 400, "Bad Request", "bad-request"


class UnsupportedMediaTypeError(ProblemError):
    status, title, type_slug = 415, "Unsupported Media Type", "unsupported-media-type"


class PayloadTooLargeError(ProblemError):
    status, title, type_slug = 413, "Content Too Large", "payload-too-large"


class ValidationError(ProblemError):
    """422 listing every offending field as ``{"loc", "msg", "type"}``."""

    status, title, type_slug = 422, "Unprocessable Content", "validation-error"

    def __init__(self, errors: Sequence[Mapping[str, Any]], detail: str | None = None) -> None:
        count = len(errors)
        super().__init__(
            detail or f"{count} invalid field{'s' if count != 1 else ''}",
            errors=[dict(e) for e in errors],
        )


class AuthenticationError(ProblemError):
    status, title, type_slug = 401, "Unauthorized", "unauthorized"
    default_headers = {"WWW-Authenticate": "Bearer"}


class InvalidTokenError(AuthenticationError):
    """The token is malformed, forged, of the wrong kind or revoked."""

    type_slug = "invalid-token"
    default_headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class ExpiredTokenError(InvalidTokenError):
    type_slug = "expired-token"


class TokenReuseError(InvalidTokenError):
    """A spent refresh token was presented again; its session has been revoked."""

    type_slug = "token-reuse"


class PermissionDeniedError(ProblemError):
    status, title, type_slug = 403, "Forbidden", "forbidden"


class MfaEnrollmentRequiredError(PermissionDeniedError):
    """403: the tenant requires a second factor and the caller has none yet."""

    type_slug = "mfa-enrollment-required"


class SsoRequiredError(PermissionDeniedError):
    """403: the tenant enforces its single sign-on for the user's email domain; no password sign-in."""

    type_slug = "sso-required"


class FederatedLoginRefusedError(PermissionDeniedError):
    """403: a federated sign-in was refused (a plugin said no, or an email outside the tenant's domains)."""

    type_slug = "federated-login-refused"


class OidcError(BadRequestError):
    """400: an OpenID Connect sign-in could not be completed safely (state, code, ID token, provider)."""

    type_slug = "oidc-failed"


class TenantError(ProblemError):
    """Base for tenant resolution failures."""


class TenantNotFoundError(TenantError):
    status, title, type_slug = 404, "Not Found", "tenant-not-found"


class TenantRequiredError(TenantError):
    status, title, type_slug = 400, "Bad Request", "tenant-required"


class TenantForbiddenError(TenantError):
    status, title, type_slug = 403, "Forbidden", "tenant-forbidden"


class NotFoundError(ProblemError):
    status, title, type_slug = 404, "Not Found", "not-found"


class ConflictError(ProblemError):
    status, title, type_slug = 409, "Conflict", "conflict"


class AccountExistsError(ConflictError):
    """409: an account with this email exists and the identity may not be linked to it automatically."""

    type_slug = "account-exists"


class AccountLockedError(ProblemError):
    status, title, type_slug = 423, "Locked", "account-locked"


class RateLimitedError(ProblemError):
    status, title, type_slug = 429, "Too Many Requests", "rate-limited"


class ServiceUnavailableError(ProblemError):
    status, title, type_slug = 503, "Service Unavailable", "service-unavailable"


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    423: "Locked",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    type_: str = "about:blank",
    headers: Mapping[str, str] | None = None,
    instance: str | None = None,
    **extensions: Any,
) -> Response:
    """Build an ``application/problem+json`` response (RFC 9457)."""
    body: dict[str, Any] = {
        "type": _problem_type(type_),
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail or title or _TITLES.get(status, "Error"),
    }
    if instance:
        body["instance"] = instance
    for key, value in extensions.items():
        body.setdefault(key, value)
    try:
        content = orjson.dumps(body, default=str)
    except TypeError:  # what orjson refuses (integers beyond 64 bits...): the standard library
        content = json.dumps(body, separators=(",", ":"), default=str).encode()
    return Response(content, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_CONTENT_TYPE)
