"""``rate_limit``: a per-route budget on top of the kit's defaults."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Literal, ParamSpec

from starlette.requests import HTTPConnection
from starlette.responses import Response

from tenantkit.security.ratelimit import RateLimiter, limit_headers, rate_key
from tenantkit.settings import RateLimit

__all__ = ["rate_limit"]

P = ParamSpec("P")
KeyKind = Literal["user", "ip", "tenant"]


def _connection(args: tuple[Any, ...]) -> HTTPConnection:
    for arg in args:
        if isinstance(arg, HTTPConnection):
            return arg
    raise TypeError("@rate_limit needs an endpoint receiving a Request")


def _limiter(conn: HTTPConnection) -> RateLimiter:
    limiter = conn.scope.get("state", {}).get("rate_limiter")
    if limiter is None:
        kit = getattr(conn.app.state, "tenantkit", None) if conn.scope.get("app") is not None else None
        limiter = getattr(kit, "rate_limiter", None)
    assert isinstance(limiter, RateLimiter), (
        "@rate_limit needs tenantkit's RateLimitMiddleware (add kit.middleware to the app)"
    )
    return limiter


def _subject(conn: HTTPConnection, key: KeyKind) -> tuple[str, str]:
    state = conn.scope.get("state", {})
    principal = state.get("principal")
    if key == "user" and principal is not None:
        return "user", str(principal.user_id)
    if key == "tenant":
        if principal is not None:
            return "tenant", str(principal.tenant_id)
        tenant = state.get("tenant")
        if tenant is not None:
            return "tenant", str(tenant.id)
    address = state.get("client_ip")
    if address is None:
        address = conn.client.host if conn.client else "unknown"
    return "ip", str(address)


def rate_limit(
    rate: str | RateLimit, *, key: KeyKind = "user", name: str | None = None
) -> Callable[[Callable[P, Awaitable[Response]]], Callable[P, Awaitable[Response]]]:
    """Give an endpoint its own budget, checked inside the endpoint.

    The budget is kept per user (``key="user"``, falling back to the client
    address for anonymous callers), per tenant or per client address. Over
    budget the endpoint does not run and the caller gets 429 with
    ``Retry-After``; a successful response carries ``RateLimit-Policy`` and
    ``RateLimit`` for this budget (after the kit's own). Put it below
    ``@requires_permissions`` so 401/403 come first.

    Example:
        ```python
        @requires_permissions("reports.create")
        @rate_limit("10/minute", key="tenant")
        async def create_report(request: Request) -> Response: ...
        ```

    Args:
        rate: ``"10/minute"``, ``"5/10second"``... or a ``RateLimit``.
        key: Whose budget: ``"user"``, ``"tenant"`` or ``"ip"``.
        name: The policy name in headers and keys (default: the function name).
    """
    parsed = RateLimit.parse(rate) if isinstance(rate, str) else rate
    if key not in ("user", "ip", "tenant"):
        raise ValueError(f"rate_limit key must be 'user', 'ip' or 'tenant', not {key!r}")

    def decorate(endpoint: Callable[P, Awaitable[Response]]) -> Callable[P, Awaitable[Response]]:
        policy = name or endpoint.__name__

        @functools.wraps(endpoint)
        async def limited(*args: P.args, **kwargs: P.kwargs) -> Response:
            conn = _connection(args)
            kind, subject = _subject(conn, key)
            result = await _limiter(conn).check(
                rate_key(kind, subject, "route:" + policy), parsed, policy=policy
            )
            response = await endpoint(*args, **kwargs)
            for header, value in limit_headers([result]).items():
                response.headers.append(header, value)
            return response

        limited.__tenantkit_rate_limit__ = {  # type: ignore[attr-defined]
            "limit": parsed.limit,
            "period": parsed.period,
            "key": key,
            "policy": policy,
        }
        return limited

    return decorate
