"""Pure-ASGI rate limiting per client address, user and tenant."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantkit.errors import RateLimitedError
from tenantkit.security.ratelimit import RateLimiter, RateLimitResult, limit_headers, rate_key
from tenantkit.settings import RateLimit

__all__ = ["DEFAULT_AUTH_PATHS", "DEFAULT_EXEMPT_PATHS", "RateLimitMiddleware"]

DEFAULT_AUTH_PATHS = (
    "/auth/login",
    "/auth/register",
    "/auth/refresh",
    "/auth/password-reset",
    "/auth/password-reset/confirm",
)
"""``POST`` paths limited per client address with the auth budget."""

DEFAULT_EXEMPT_PATHS = ("/health", "/metrics")


def _label_route(scope: Scope) -> None:
    """Record the endpoint the request would have reached, so metrics name its route."""
    for route in getattr(scope.get("app"), "routes", ()):
        match, child = route.matches(scope)
        if match != Match.NONE:
            if "endpoint" in child:
                scope["endpoint"] = child["endpoint"]
            return


class RateLimitMiddleware:
    """Apply the kit's budgets and advertise them on every limited response.

    * ``POST`` on an auth path (login, register, refresh, password reset):
      per client address (``scope["state"]["client_ip"]``, which honours
      trusted proxies only) with ``auth``, one budget per path.
    * Any other request with a principal: per user with ``api`` and per tenant
      (the token's ``tid``) with ``tenant``.
    * Anonymous requests: per client address with ``api``.
    * ``exempt_paths`` (health, metrics) are not counted.

    It runs after authentication (the per-user budget needs the principal) and
    before tenant resolution. Limited responses carry ``RateLimit-Policy`` and
    ``RateLimit``; refusals are 429 problem+json with ``Retry-After``. The
    limiter is stored in ``scope["state"]["rate_limiter"]`` for
    :func:`~tenantkit.security.rate_limit`.

    Args:
        app: The next ASGI app.
        limiter: The kit's limiter.
        auth: Budget per address on auth paths.
        api: Budget per user (or anonymous address) on everything else.
        tenant: Budget per tenant; ``None`` turns the tenant budget off.
        auth_paths: Paths limited with ``auth`` on ``POST``.
        exempt_paths: Paths never limited.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RateLimiter,
        auth: RateLimit,
        api: RateLimit,
        tenant: RateLimit | None = None,
        auth_paths: Iterable[str] = DEFAULT_AUTH_PATHS,
        exempt_paths: Iterable[str] = DEFAULT_EXEMPT_PATHS,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.auth = auth
        self.api = api
        self.tenant = tenant
        self.auth_paths = {p: p.strip("/").split("/", 1)[-1].replace("/", "-") for p in auth_paths}
        self.exempt_paths = frozenset(exempt_paths)

    def _checks(self, scope: Scope) -> list[tuple[str, RateLimit, str]]:
        state = scope["state"]
        path = scope["path"]
        address = state.get("client_ip")
        if address is None:
            client = scope.get("client")
            address = str(client[0]) if client else "unknown"
        name = self.auth_paths.get(path)
        if name is not None and scope["method"] == "POST":
            return [(rate_key("ip", address, name), self.auth, "auth")]
        principal = state.get("principal")
        if principal is None:
            return [(rate_key("ip", address, "api"), self.api, "api")]
        checks = [(rate_key("user", str(principal.user_id), "api"), self.api, "api")]
        if self.tenant is not None:
            checks.append((rate_key("tenant", str(principal.tenant_id), "api"), self.tenant, "tenant"))
        return checks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["rate_limiter"] = self.limiter
        if scope["path"] in self.exempt_paths or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        results: list[RateLimitResult] = []
        for key, rate, policy in self._checks(scope):
            result = await self.limiter.hit(key, rate, policy=policy)
            results.append(result)
            if not result.allowed:
                break
        headers = limit_headers(results)
        if not results[-1].allowed:
            _label_route(scope)
            error = RateLimitedError(
                f"Too many requests; retry in {headers['Retry-After']} s.", headers=headers
            )
            await error.to_response()(scope, receive, send)
            return
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *raw]
            await send(message)

        await self.app(scope, receive, send_with_limits)
