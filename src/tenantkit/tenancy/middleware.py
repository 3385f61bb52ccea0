"""Pure-ASGI tenant resolution: runs after authentication, sets the tenant context."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from tenantkit.context import _tenant
from tenantkit.errors import ProblemError, TenantForbiddenError, TenantNotFoundError
from tenantkit.tenancy.directory import TenantDirectory
from tenantkit.tenancy.resolvers import TenantResolver

__all__ = ["TenantMiddleware"]


class TenantMiddleware:
    """Resolve the tenant with the configured resolvers (first answer wins).

    Outcomes: unknown tenant → 404, suspended → 403, a tenant other than the
    one the access token is bound to → 403. For authenticated requests these
    are answered at once; for anonymous ones the error is kept in
    ``scope["state"]["tenant_error"]`` so a protected route still answers 401
    first, and a public route that needs the tenant raises it.
    """

    def __init__(self, app: ASGIApp, *, directory: TenantDirectory, resolvers: list[TenantResolver]) -> None:
        self.app = app
        self.directory = directory
        self.resolvers = resolvers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        principal = state.get("principal")
        identifier = None
        for resolver in self.resolvers:
            identifier = resolver(scope)
            if identifier is not None:
                break
        state["tenant"] = None
        if identifier is not None:
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
                elif scope["type"] == "http":
                    await error.to_response()(scope, receive, send)
                    return
                else:
                    await send({"type": "websocket.close", "code": 1008})
                    return
            else:
                state["tenant"] = tenant
                _tenant.set(tenant)
        await self.app(scope, receive, send)
