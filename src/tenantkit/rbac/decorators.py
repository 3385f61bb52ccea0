"""``requires_permissions`` and ``requires_roles`` for Starlette endpoints.

They feel like Starlette's ``requires``: the endpoint signature is inspected
once at decoration time, function endpoints and ``HTTPEndpoint`` methods both
work, and the shared check lives in one helper. Checks, in order: 401 when
unauthenticated, the tenant outcome (404/403) when resolution failed, then
403 when the live role lacks what is required.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from starlette.requests import HTTPConnection, Request

from tenantkit.context import Principal, TenantRef
from tenantkit.errors import (
    AuthenticationError,
    MfaEnrollmentRequiredError,
    PermissionDeniedError,
    TenantRequiredError,
)
from tenantkit.rbac.access import Access

__all__ = [
    "authorize",
    "current_permissions",
    "declared_permissions",
    "request_principal",
    "request_tenant",
    "requires_auth",
    "requires_permissions",
    "requires_roles",
]

P = ParamSpec("P")
R = TypeVar("R")

#: Every permission named by a decorator, checked against the registry at start-up.
declared_permissions: set[str] = set()


def request_principal(conn: HTTPConnection) -> Principal:
    """The authenticated principal, or 401."""
    principal: Principal | None = conn.scope.get("state", {}).get("principal")
    if principal is None:
        raise AuthenticationError("Authentication required.")
    return principal


def request_tenant(conn: HTTPConnection) -> TenantRef:
    """The resolved tenant, or the resolution error (404/403), or 400 when none was named."""
    state = conn.scope.get("state", {})
    error = state.get("tenant_error")
    if error is not None:
        raise error
    tenant: TenantRef | None = state.get("tenant")
    if tenant is None:
        raise TenantRequiredError("Name a tenant with the X-Tenant-ID header.")
    return tenant


def _access(conn: HTTPConnection) -> Access:
    access: Access | None = conn.scope.get("state", {}).get("access")
    assert access is not None, "tenantkit's AuthenticationMiddleware must be installed (it publishes Access)"
    return access


async def current_permissions(conn: HTTPConnection) -> tuple[Principal, TenantRef, str, frozenset[str]]:
    """Principal, tenant, live role and permissions of the caller (cached per request)."""
    state = conn.scope.setdefault("state", {})
    cached = state.get("tenantkit_permissions")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    principal = request_principal(conn)
    tenant = request_tenant(conn)
    claims = principal.claims
    key = principal.api_key
    granted = await _access(conn).grants(
        claims.get("tid") or tenant.id,
        claims.get("sub") or principal.user_id,
        scopes=key.scopes if key is not None else None,
    )
    if granted is None:
        raise PermissionDeniedError("You are not a member of this tenant.")
    role, permissions = granted
    result = (principal, tenant, role, permissions)
    state["tenantkit_permissions"] = result
    return result


def _guard(
    check: Callable[[HTTPConnection], Awaitable[None]],
    marker: dict[str, Any],
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    def decorator(endpoint: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        signature = inspect.signature(endpoint)
        names = list(signature.parameters)
        index = next((i for i, n in enumerate(names) if n in ("request", "websocket")), None)
        if index is None:
            raise TypeError(f'no "request" or "websocket" argument on function "{endpoint.__name__}"')
        if not inspect.iscoroutinefunction(endpoint):
            raise TypeError("tenantkit guards need an async endpoint")

        name = names[index]

        enrolment = bool(marker.get("enrolment"))
        session_only = bool(marker.get("session"))

        @functools.wraps(endpoint)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            conn = kwargs[name] if name in kwargs else args[index]
            assert isinstance(conn, HTTPConnection), "the decorated endpoint must receive the request"
            if session_only:
                _refuse_api_keys(conn)
            if not enrolment:
                await _second_factor_gate(conn)
            await check(conn)
            return await endpoint(*args, **kwargs)

        existing = getattr(endpoint, "__tenantkit_guard__", {})
        wrapper.__tenantkit_guard__ = {**existing, **marker}  # type: ignore[attr-defined]
        return wrapper

    return decorator


def requires_auth(
    *, enrolment: bool = False, session: bool = False
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Only an authenticated caller (401 otherwise).

    Args:
        enrolment: Also open to a member who has no second factor yet in a
            tenant that requires one (the profile, 2FA enrolment, sign-out);
            every other guarded route answers them 403 ``mfa-enrollment-required``.
        session: Only for a signed-in user's own session (sign-out, password,
            devices, 2FA...): an API key gets 403.
    """

    async def check(conn: HTTPConnection) -> None:
        request_principal(conn)

    return _guard(check, {"auth": True, "enrolment": enrolment, "session": session})


def _refuse_api_keys(conn: HTTPConnection) -> None:
    principal: Principal | None = conn.scope.get("state", {}).get("principal")
    if principal is not None and principal.api_key is not None:
        raise PermissionDeniedError("API keys cannot use this route: it belongs to a user's session.")


async def _second_factor_gate(conn: HTTPConnection) -> None:
    """403 ``mfa-enrollment-required`` when the tenant requires 2FA the caller has not enrolled.

    Checked live on every request (not from the token), so a tenant turning the
    requirement on reaches members whatever their token's age.
    """
    state = conn.scope.get("state", {})
    tenant: TenantRef | None = state.get("tenant")
    principal: Principal | None = state.get("principal")
    if tenant is None or principal is None or not tenant.require_mfa:
        return
    if state.get("tenantkit_enrolled") is None:
        state["tenantkit_enrolled"] = await _access(conn).enrolled(principal.user_id)
    if not state["tenantkit_enrolled"]:
        raise MfaEnrollmentRequiredError(
            "This tenant requires two-factor sign-in: set it up at /auth/2fa/totp/setup."
        )


def requires_permissions(
    *codes: str, any_of: bool = False, session: bool = False
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Require permissions in the current tenant (all of them, or ``any_of=True``).

    A code no registry knows makes the kit refuse to start. ``session=True``
    refuses API keys (a signed-in user only).
    """
    if not codes:
        raise ValueError("name at least one permission")
    declared_permissions.update(codes)
    required = frozenset(codes)

    async def check(conn: HTTPConnection) -> None:
        _, _, _, granted = await current_permissions(conn)
        ok = bool(required & granted) if any_of else required <= granted
        if not ok:
            raise PermissionDeniedError("You do not have permission to do this.")

    return _guard(check, {"auth": True, "permissions": sorted(codes), "any_of": any_of, "session": session})


def requires_roles(*roles: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Require one of ``roles`` (built-in roles inherit: ADMIN satisfies USER)."""
    if not roles:
        raise ValueError("name at least one role")
    from tenantkit.rbac.roles import RoleBook

    lowest = min((RoleBook.rank(r) for r in roles if RoleBook.rank(r)), default=0)

    async def check(conn: HTTPConnection) -> None:
        _, _, role, _ = await current_permissions(conn)
        if role in roles or (lowest and RoleBook.rank(role) >= lowest):
            return
        raise PermissionDeniedError("Your role does not allow this.")

    return _guard(check, {"auth": True, "roles": sorted(roles)})


async def authorize(request: Request, permission: str, resource: Any) -> None:
    """Check ``permission`` on ``resource``: plugins' ``tenantkit_authorize`` first, then the role.

    Raises:
        PermissionDeniedError: denied by a plugin, or the role lacks the permission.
    """
    principal, _, role, granted = await current_permissions(request)
    if principal.role != role:  # policies judge the live role, not the one the token was issued with
        principal = dataclasses.replace(principal, role=role)
    verdict = _access(request).policy(principal, permission, resource)
    if verdict is False or (verdict is None and permission not in granted):
        raise PermissionDeniedError("You do not have permission to do this.")
