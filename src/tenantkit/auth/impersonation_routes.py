"""``POST /auth/impersonate``: an audited, time-limited token of another user."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tenantkit.auth.impersonation import Impersonation
from tenantkit.auth.schemas import ImpersonateIn, ImpersonationOut
from tenantkit.http import NO_STORE, parse_body
from tenantkit.openapi import describe
from tenantkit.rbac.decorators import current_permissions, requires_auth

__all__ = ["ImpersonationRoutes"]


class ImpersonationRoutes:
    """The impersonation route.

    Args:
        impersonation: The service.
        max_json_depth: Deepest JSON body accepted.
        prefix: Where the auth routes live.
    """

    def __init__(
        self, impersonation: Impersonation, *, max_json_depth: int = 32, prefix: str = "/auth"
    ) -> None:
        self.impersonation = impersonation
        self.depth = max_json_depth
        self.prefix = prefix

    def routes(self) -> list[BaseRoute]:
        return [Route(f"{self.prefix}/impersonate", self.start, methods=["POST"], name="auth:impersonate")]

    @describe(
        summary="Act as a member of lower role (SUPER_ADMIN, or users.impersonate), with a reason",
        body=ImpersonateIn,
        response=ImpersonationOut,
        responses={403: "Not allowed: permission, role rank, or a policy.", 404: "No such member."},
        tags=["auth"],
    )
    @requires_auth(session=True)
    async def start(self, request: Request) -> Response:
        principal, tenant, role, permissions = await current_permissions(request)
        body = await parse_body(request, ImpersonateIn, max_depth=self.depth)
        token, expires_in = await self.impersonation.start(
            principal,
            actor_role=role,
            actor_permissions=permissions,
            tenant=tenant,
            user_id=body.user_id,
            reason=body.reason,
            read_only=body.read_only,
            minutes=body.minutes,
            ip=request.state.client_ip,
            user_agent=request.headers.get("user-agent", ""),
        )
        return JSONResponse(
            {"access_token": token, "token_type": "bearer", "expires_in": expires_in},
            headers=NO_STORE,
        )
