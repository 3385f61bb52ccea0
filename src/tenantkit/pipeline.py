"""The per-request path in two pure-ASGI passes: the edge, then identity.

Each concern is a plain object with one job, in its own module; a pass calls
them in the order of the HTTP contract and wraps ``send`` once.

* :class:`EdgeMiddleware` — request id and client address
  (:class:`~tenantkit.observability.middleware.RequestContext`), trusted hosts
  (:class:`~tenantkit.security.hosts.TrustedHosts`), CORS preflights and headers
  (:class:`~tenantkit.security.cors.CORSPolicy`), the empty tenant header's
  refusal (:class:`~tenantkit.security.request_headers.EmptyHeaders`), the body
  size limit (:class:`~tenantkit.security.body_limit.BodyLimit`), security headers
  (:class:`~tenantkit.security.headers.SecurityHeaders`), and at the end metrics,
  the access log and the 500 for an unhandled error. The request headers are
  read in one loop; every response (refusals and errors included) gets
  ``X-Request-ID`` and the security headers.
* :class:`IdentityMiddleware` — authentication (401,
  :class:`~tenantkit.auth.middleware.Authentication`), rate limiting (429,
  :class:`~tenantkit.security.middleware.RateLimits`), then tenant resolution
  (404/403, :class:`~tenantkit.tenancy.middleware.TenantResolution`). Its
  ``RateLimit`` headers ride on the edge's ``send`` wrapper.

``TenantKit.middleware`` returns the two passes. The single-concern middleware
classes (``RequestContextMiddleware``, ``SecurityHeadersMiddleware``...) remain
for applications that compose their own stack.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantkit.auth.identity import Authenticator
from tenantkit.auth.middleware import Authentication
from tenantkit.context import _client_ip, _principal, _request_id, _tenant
from tenantkit.errors import ProblemError
from tenantkit.observability.metrics import Metrics
from tenantkit.observability.middleware import RequestContext
from tenantkit.security.body_limit import BodyLimit, BodyTooLarge
from tenantkit.security.cors import CORSPolicy
from tenantkit.security.headers import SecurityHeaders
from tenantkit.security.hosts import TrustedHosts
from tenantkit.security.middleware import RateLimits
from tenantkit.security.ratelimit import RateLimiter
from tenantkit.security.request_headers import EmptyHeaders
from tenantkit.settings import Settings
from tenantkit.tenancy.directory import TenantDirectory
from tenantkit.tenancy.middleware import TenantResolution
from tenantkit.tenancy.resolvers import TenantResolver

__all__ = [
    "RESPONSE_HEADERS",
    "EdgeMiddleware",
    "IdentityMiddleware",
    "edge_middleware",
    "identity_middleware",
]

#: ``scope["state"]`` key of the list of headers inner steps add to the response;
#: the edge pass appends them when the response starts.
RESPONSE_HEADERS = "tenantkit.response_headers"

_ACRM = b"access-control-request-method"


class EdgeMiddleware:
    """The outer pass: what every request gets before anyone asks who is calling.

    Args:
        app: The next ASGI app.
        context: Request id, client address, metrics and access log.
        headers: Security headers for every response.
        hosts: The ``Host`` allowlist (``None``: every host).
        cors: CORS rules (``None``: no CORS).
        empty_headers: Request headers refused when sent empty (``None``: none).
        body_limit: The request body size limit (``None``: no limit).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        context: RequestContext,
        headers: SecurityHeaders,
        hosts: TrustedHosts | None = None,
        cors: CORSPolicy | None = None,
        empty_headers: EmptyHeaders | None = None,
        body_limit: BodyLimit | None = None,
    ) -> None:
        self.app = app
        self.context = context
        self.headers = headers
        self.hosts = None if hosts is None or hosts.allow_any else hosts
        self.cors = cors
        self.empty_headers = empty_headers
        self.body_limit = body_limit
        self._empty_names = empty_headers.names if empty_headers is not None else frozenset()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket":
                await self._websocket(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        context = self.context
        sent_id = host = origin = length = empty = None
        framed = preflight = False
        empty_names = self._empty_names
        # One pass over the request headers for every edge concern.
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if sent_id is None:
                    sent_id = value
            elif name == b"host":
                if host is None:
                    host = value
            elif name == b"origin":
                if origin is None:
                    origin = value
            elif name == b"content-length":
                if not framed:
                    length = value
                framed = True
            elif name == b"transfer-encoding":
                framed = True
            elif name == _ACRM:
                preflight = True
            elif name in empty_names and empty is None and EmptyHeaders.is_empty(value):
                empty = name
        request_id = context.request_id(sent_id)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        client = state["client_ip"] = context.client_address(scope)
        late: list[tuple[bytes, bytes]] = []
        state[RESPONSE_HEADERS] = late
        security = self.headers
        extra = security.for_path(scope["path"])
        id_header = (b"x-request-id", request_id.encode())
        cors = self.cors
        origin_text = origin.decode("latin-1") if origin is not None else None
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = [*message.get("headers", ()), *late]
                if cors is not None:
                    cors.add(headers, origin_text)
                security.add(headers, extra)
                headers.append(id_header)
                message["headers"] = headers
            await send(message)

        token_rid = _request_id.set(request_id)
        token_ip = _client_ip.set(client)
        token_tenant = _tenant.set(None)
        token_principal = _principal.set(None)
        try:
            if self.hosts is not None and not self.hosts.allowed(
                host.decode("latin-1") if host is not None else ""
            ):
                cors = None  # a refused host gets no CORS headers
                await self.hosts.refusal()(scope, receive, send_wrapper)
            elif cors is not None and preflight and origin is not None and scope["method"] == "OPTIONS":
                response = cors.preflight(scope)
                cors = None  # the preflight answer carries its own
                await response(scope, receive, send_wrapper)
            elif empty is not None and self.empty_headers is not None:
                await self.empty_headers.refusal(empty)(scope, receive, send_wrapper)
            elif (limit := self.body_limit) is None or limit.exempt(scope["path"]):
                await self.app(scope, receive, send_wrapper)
            elif limit.refuses(length):
                await limit.refusal()(scope, receive, send_wrapper)
            elif not limit.needs_counting(scope, framed):
                await self.app(scope, receive, send_wrapper)  # no body can follow: nothing to count
            else:
                await self.app(scope, limit.counting(receive), send_wrapper)
        except BodyTooLarge as error:
            late.clear()
            if response_started:
                context.unhandled(scope)
                raise
            limit = self.body_limit
            await (limit.refusal() if limit is not None else error.to_response())(
                scope, receive, send_wrapper
            )
        except Exception:
            late.clear()
            response = context.unhandled(scope)
            if response_started:
                raise
            await response(scope, receive, send_wrapper)
        finally:
            context.record(scope, status, time.perf_counter() - started)
            _principal.reset(token_principal)
            _tenant.reset(token_tenant)
            _client_ip.reset(token_ip)
            _request_id.reset(token_rid)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Request id, client address and trusted hosts for a WebSocket (the rest is HTTP's)."""
        context = self.context
        sent_id = host = None
        for name, value in scope["headers"]:
            if name == b"x-request-id" and sent_id is None:
                sent_id = value
            elif name == b"host" and host is None:
                host = value
        request_id = context.request_id(sent_id)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_ip"] = context.client_address(scope)
        token_rid = _request_id.set(request_id)
        token_ip = _client_ip.set(state["client_ip"])
        token_tenant = _tenant.set(None)
        token_principal = _principal.set(None)
        try:
            if self.hosts is not None and not self.hosts.allowed(
                host.decode("latin-1") if host is not None else ""
            ):
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
        except Exception:
            context.unhandled(scope)
            raise
        finally:
            _principal.reset(token_principal)
            _tenant.reset(token_tenant)
            _client_ip.reset(token_ip)
            _request_id.reset(token_rid)


class IdentityMiddleware:
    """The inner pass: who is calling (401), within budget (429), in which tenant (404/403).

    Args:
        app: The next ASGI app.
        authentication: Sets the principal from the bearer token.
        rate_limits: The budgets (``None``: no rate limiting).
        tenants: Sets the tenant from the configured resolvers.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        authentication: Authentication,
        rate_limits: RateLimits | None,
        tenants: TenantResolution,
    ) -> None:
        self.app = app
        self.authentication = authentication
        self.rate_limits = rate_limits
        self.tenants = tenants

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        try:
            await self.authentication(scope, state)
            if kind == "http" and self.rate_limits is not None:
                refusal, extra = await self.rate_limits(scope)
                if refusal is not None:
                    await refusal(scope, receive, send)
                    return
                if extra:  # on every answer from here on, tenant refusals included
                    late = state.get(RESPONSE_HEADERS)
                    if late is not None:
                        late.extend(extra)
                    else:  # used without the edge pass: add them here
                        send = _adding(send, extra)
            error = await self.tenants(scope, state)
            if error is not None:
                raise error
        except ProblemError as error:
            if kind == "http":
                await error.to_response()(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        await self.app(scope, receive, send)


def _adding(send: Send, extra: tuple[tuple[bytes, bytes], ...]) -> Send:
    async def send_with(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *extra]
        await send(message)

    return send_with


def edge_middleware(
    settings: Settings, *, metrics: Metrics | None = None, body_limit_exempt: Iterable[str] = ()
) -> Middleware:
    """The edge pass from ``settings`` (``body_limit_exempt``: prefixes that check their own size)."""
    cors = None
    if settings.cors_origins:
        cors = CORSPolicy(
            allow_origins=settings.cors_origins,
            allow_headers=("Authorization", "Content-Type", settings.tenant_header, "X-Request-ID"),
        )
    return Middleware(
        EdgeMiddleware,
        context=RequestContext(trusted_proxies=settings.trusted_proxies, metrics=metrics),
        headers=SecurityHeaders(hsts=not settings.is_development),
        hosts=TrustedHosts(settings.allowed_hosts) if settings.allowed_hosts else None,
        cors=cors,
        empty_headers=EmptyHeaders((settings.tenant_header,)),
        body_limit=BodyLimit(settings.max_body_bytes, exempt_prefixes=list(body_limit_exempt)),
    )


def identity_middleware(
    settings: Settings,
    *,
    authenticator: Authenticator,
    access: Any,
    optional_paths: Iterable[str],
    limiter: RateLimiter,
    directory: TenantDirectory,
    resolvers: list[TenantResolver],
    optional_prefixes: Iterable[str] = (),
) -> Middleware:
    """The identity pass configured from ``settings``.

    ``optional_paths``: where a stale or foreign ``Authorization`` header is
    ignored rather than refused (the public routes: sign-in, refresh...);
    ``optional_prefixes``: the same for every path under a prefix (``/scim/v2/``,
    whose routes authenticate SCIM tokens themselves).
    """
    return Middleware(
        IdentityMiddleware,
        authentication=Authentication(
            authenticator, access=access, optional_paths=optional_paths, optional_prefixes=optional_prefixes
        ),
        rate_limits=RateLimits(
            limiter=limiter,
            auth=settings.rate_limit_auth,
            api=settings.rate_limit_api,
            tenant=settings.rate_limit_tenant,
            tenant_prefix=settings.tenant_path_prefix if "path" in settings.tenant_resolvers else None,
        ),
        tenants=TenantResolution(directory, resolvers),
    )
