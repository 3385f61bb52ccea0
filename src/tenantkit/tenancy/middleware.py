"""Tenant resolution (a plain object and its middleware): runs after authentication."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from tenantkit.context import _tenant
from tenantkit.errors import ProblemError, TenantForbiddenError, TenantNotFoundError
from tenantkit.tenancy.directory import TenantDirectory
from tenantkit.tenancy.resolvers import TenantResolver

__all__ = ["TenantMiddleware", "TenantResolution"]


class TenantResolution:
    """Which tenant a request acts in, with the configured resolvers (first answer wins).

    Outcomes: unknown tenant → 404, suspended → 403, a tenant other than the
    one the access token is bound to → 403. For authenticated requests these
    are the answer; for anonymous ones the error is kept in
    ``scope["state"]["tenant_error"]`` so a protected route still answers 401
    first, and a public route that needs the tenant raises it.

    Args:
        directory: Finds tenants (from memory when warm).
        resolvers: Where a request names its tenant, in order.
    """

    def __init__(self, directory: TenantDirectory, resolvers: list[TenantResolver]) -> None:
        self.directory = directory
        self.resolvers = resolvers

    async def __call__(self, scope: Scope, state: dict[str, Any]) -> ProblemError | None:
        """Set ``state["tenant"]`` (and the context variable); the error to answer, if any."""
        principal = state.get("principal")
        identifier = None
        for resolver in self.resolvers:
            identifier = resolver(scope)
            if identifier is not None:
                break
        state["tenant"] = None
        if identifier is None:
            return None
        try:
            tenant = await self.directory.find(identifier)
            if tenant is None:
                raise TenantNotFoundError("Unknown tenant.")
            if principal is not None and tenant.id != principal.tenant_id:
                raise TenantForbiddenError("The access token is not bound to this tenant.")
            if tenant.status != "active":
                raise TenantForbiddenError("This tenant is suspended.")
        except ProblemError as error:
            if principal is None:
                state["tenant_error"] = error
                return None
            return error
        state["tenant"] = tenant
        _tenant.set(tenant)
        return None


class TenantMiddleware:
    """:class:`TenantResolution` as a middleware of its own (runs after authentication).

    (The kit runs the same step inside its identity pass.)
    """

    def __init__(self, app: ASGIApp, *, directory: TenantDirectory, resolvers: list[TenantResolver]) -> None:
        self.app = app
        self.resolution = TenantResolution(directory, resolvers)
        self.directory = directory
        self.resolvers = resolvers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        error = await self.resolution(scope, scope.setdefault("state", {}))
        if error is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await error.to_response()(scope, receive, send)
        else:
            await send({"type": "websocket.close", "code": 1008})
