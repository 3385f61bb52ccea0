"""Rate limiting per client address, user and tenant (a plain object and its middleware)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantkit.errors import RateLimitedError
from tenantkit.routing import RouteTable
from tenantkit.security.ratelimit import RateLimiter, RateLimitResult, limit_headers, rate_key
from tenantkit.settings import RateLimit

__all__ = ["RateLimitMiddleware", "RateLimits"]


def _label_route(scope: Scope) -> None:
    """Record the endpoint the request would have reached, so metrics name its route."""
    for route in getattr(scope.get("app"), "routes", ()):
        match, child = route.matches(scope)
        if match != Match.NONE:
            if "endpoint" in child:
                scope["endpoint"] = child["endpoint"]
            return


class RateLimits:
    """The kit's budgets: which a request counts against, and the answer when one is spent.

    * A non-safe method on a route declared ``public=True`` (login, register,
      refresh, password reset): per client address (``scope["state"]["client_ip"]``,
      which honours trusted proxies only) with ``auth``, one budget per route.
      The route is the one the request reaches, whatever tenant path prefix
      (``/t/{slug}/auth/login``) or ``root_path`` led there: the routes are read
      from the application (:class:`tenantkit.routing.RouteTable`) on the first
      request, and the decision per path and method is remembered.
    * Any other request with a principal: per user with ``api`` and per tenant
      (the token's ``tid``) with ``tenant``.
    * Anonymous requests: per client address with ``api``.
    * Routes declared ``describe(rate_limited=False)`` (health, metrics) and
      ``exempt_paths`` are not counted, through a prefix too.

    The per-user, per-tenant and anonymous budgets are decided in process
    (:meth:`RateLimiter.count`, reconciled with Redis in batches: no I/O on the
    request); the per-address budgets of public routes are exact (one store
    round trip: those requests write or hash a password anyway).

    It runs after authentication (the per-user budget needs the principal) and
    before tenant resolution. Limited responses carry ``RateLimit-Policy`` and
    ``RateLimit``; refusals are 429 problem+json with ``Retry-After``. The
    limiter is stored in ``scope["state"]["rate_limiter"]`` for
    :func:`~tenantkit.security.rate_limit`.

    Args:
        limiter: The kit's limiter.
        auth: Budget per address on auth paths.
        api: Budget per user (or anonymous address) on everything else.
        tenant: Budget per tenant; ``None`` turns the tenant budget off.
        auth_paths: Paths limited with ``auth`` on ``POST``, instead of the routes
            declared public (for apps whose routes are not Starlette routes).
        exempt_paths: Paths never limited (for apps whose routes are not Starlette routes).
        tenant_prefix: The tenant path prefix (``"/t/"``) when tenants are resolved
            from the path; it is taken off before the route is looked up.
    """

    def __init__(
        self,
        *,
        limiter: RateLimiter,
        auth: RateLimit,
        api: RateLimit,
        tenant: RateLimit | None = None,
        auth_paths: Iterable[str] | None = None,
        exempt_paths: Iterable[str] = (),
        tenant_prefix: str | None = None,
    ) -> None:
        self.limiter = limiter
        self.auth = auth
        self.api = api
        self.tenant = tenant
        self.auth_paths = None if auth_paths is None else {p: _budget_name(p) for p in auth_paths}
        self.exempt_paths = frozenset(exempt_paths)
        self.tenant_prefix = tenant_prefix
        self._table: RouteTable | None = None
        self._plans: dict[tuple[object, ...], _Plan] = {}
        self._decisions: dict[tuple[str, str, str], tuple[bool, str | None]] = {}

    def classify(self, scope: Scope) -> tuple[bool, str | None]:
        """``(exempt, auth budget name or None)`` for the route this request reaches (remembered)."""
        key = (scope["method"], scope["path"], scope.get("root_path", ""))
        decision = self._decisions.get(key)
        if decision is None:
            decision = self._classify(scope)
            if len(self._decisions) >= _MAX_PLANS:  # paths with ids in them: bounded, start over
                self._decisions.clear()
            self._decisions[key] = decision
        return decision

    def _classify(self, scope: Scope) -> tuple[bool, str | None]:
        table = self._table
        if table is None:
            table = self._table = RouteTable(
                getattr(scope.get("app"), "routes", ()), tenant_prefix=self.tenant_prefix
            )
        path = table.route_path(scope)
        if path in self.exempt_paths:
            return True, None
        method = scope["method"]
        if self.auth_paths is not None:
            return False, self.auth_paths.get(path) if method == "POST" else None
        entry = table.match(path, method)
        if entry is None:
            return False, None
        if not entry.spec.rate_limited:
            return True, None
        return False, _budget_name(entry.path) if entry.spec.auth_budget(method) else None

    def _plan(self, scope: Scope, name: str | None) -> _Plan:
        """The budgets this request counts against, prepared once per subject."""
        state = scope["state"]
        principal = state.get("principal")
        key: tuple[object, ...]
        address = ""
        kind, subject_id = "user", ""
        if name is None and principal is not None:
            # An API key has a budget of its own, apart from its creator's.
            if principal.api_key is not None:
                kind, subject_id = "key", str(principal.api_key.id)
            else:
                subject_id = str(principal.user_id)
            key = (kind, subject_id, principal.tenant_id)
        else:
            address = state.get("client_ip")
            if address is None:
                client = scope.get("client")
                address = str(client[0]) if client else "unknown"
            key = (address,) if name is None else (address, name)
        plan = self._plans.get(key)
        if plan is None:
            if name is not None:
                checks = [(rate_key("ip", address, name), self.auth, "auth")]
            elif principal is None:
                checks = [(rate_key("ip", address, "api"), self.api, "api")]
            else:
                checks = [(rate_key(kind, subject_id, "api"), self.api, "api")]
                if self.tenant is not None:
                    tenant_key = rate_key("tenant", str(principal.tenant_id), "api")
                    checks.append((tenant_key, self.tenant, "tenant"))
            plan = _Plan(checks, exact=name is not None)
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    async def __call__(self, scope: Scope) -> tuple[Response | None, tuple[tuple[bytes, bytes], ...]]:
        """Count an HTTP request: ``(429 answer, ())`` when a budget is spent, else ``(None, headers)``.

        ``headers`` are the ``RateLimit-Policy`` and ``RateLimit`` headers for the
        response (empty when the request is not counted).
        """
        state = scope["state"]
        state["rate_limiter"] = self.limiter
        if scope["method"] == "OPTIONS":
            return None, ()
        exempt, name = self.classify(scope)
        if exempt:
            return None, ()
        plan = self._plan(scope, name)
        count = self.limiter.count
        outcomes: list[tuple[bool, int, float]] = []
        exact = plan.exact
        for full_key, rate, policy in plan.checks:
            outcome = await count(full_key, rate, policy, exact=exact)
            outcomes.append(outcome)
            if not outcome[0]:
                _label_route(scope)
                results = [
                    RateLimitResult(policy, rate.limit, rate.period, allowed, remaining, retry_after)
                    for (_, rate, policy), (allowed, remaining, retry_after) in zip(
                        plan.checks, outcomes, strict=False
                    )
                ]
                headers = limit_headers(results)
                error = RateLimitedError(
                    f"Too many requests; retry in {headers['Retry-After']} s.", headers=headers
                )
                return error.to_response(), ()
        return None, (plan.policy_header, (b"ratelimit", plan.state_value(outcomes)))


class RateLimitMiddleware:
    """:class:`RateLimits` as a middleware of its own (install it after authentication).

    (The kit runs the same step inside its identity pass.) Arguments as
    :class:`RateLimits`, plus ``app``, the next ASGI app.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RateLimiter,
        auth: RateLimit,
        api: RateLimit,
        tenant: RateLimit | None = None,
        auth_paths: Iterable[str] | None = None,
        exempt_paths: Iterable[str] = (),
        tenant_prefix: str | None = None,
    ) -> None:
        self.app = app
        self.limits = RateLimits(
            limiter=limiter,
            auth=auth,
            api=api,
            tenant=tenant,
            auth_paths=auth_paths,
            exempt_paths=exempt_paths,
            tenant_prefix=tenant_prefix,
        )
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        refusal, extra = await self.limits(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if not extra:
            await self.app(scope, receive, send)
            return

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_limits)


_MAX_PLANS = 10_000


def _budget_name(path: str) -> str:
    """``/auth/password-reset/confirm`` → ``password-reset-confirm`` (the key and policy suffix)."""
    return path.strip("/").split("/", 1)[-1].replace("/", "-")


class _Plan:
    """The checks for one subject, with its constant ``RateLimit-Policy`` header prebuilt.

    The header values are exactly what :func:`limit_headers` writes.
    """

    __slots__ = ("_items", "checks", "exact", "policy_header")

    def __init__(self, checks: list[tuple[str, RateLimit, str]], *, exact: bool = False) -> None:
        #: Count in the store on every request (the auth budgets), not in process.
        self.exact = exact
        #: ``(store key with the rl: prefix, budget, policy name)``, in counting order.
        self.checks = tuple(("rl:" + key, rate, policy) for key, rate, policy in checks)
        policy = ", ".join(f'"{p}";q={rate.limit};w={rate.period}' for _, rate, p in checks)
        self.policy_header = (b"ratelimit-policy", policy.encode("latin-1"))
        self._items = tuple((f'"{p}";r=', rate.limit, rate.period) for _, rate, p in checks)

    def state_value(self, outcomes: list[tuple[bool, int, float]]) -> bytes:
        """The ``RateLimit`` value when every check allowed the request."""
        parts = []
        for (prefix, limit, period), (_, remaining, _) in zip(self._items, outcomes, strict=True):
            reset = math.ceil((limit - remaining) * period / limit) if remaining < limit else 0
            parts.append(f"{prefix}{remaining};t={reset}")
        return ", ".join(parts).encode("latin-1")
