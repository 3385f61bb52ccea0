"""``/tenant/scim-tokens``: the bearer tokens a tenant's directory provisions members with."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tenantkit.db.models import ScimToken
from tenantkit.http import NO_STORE, RequestModel, SafeText, json_response, parse_body, path_uuid
from tenantkit.openapi import describe
from tenantkit.rbac.decorators import current_permissions, requires_permissions
from tenantkit.scim.tokens import SCIM_TOKEN_PREFIX, ScimTokens

__all__ = ["ScimTokenCreatedOut", "ScimTokenIn", "ScimTokenOut", "ScimTokenPage", "ScimTokenRoutes"]


class ScimTokenIn(RequestModel):
    """``POST /tenant/scim-tokens``: an optional label (which directory uses it)."""

    name: Annotated[SafeText, Field(max_length=200)] = ""


class ScimTokenOut(BaseModel):
    """A SCIM token (never its secret)."""

    id: str = Field(json_schema_extra={"format": "uuid"})
    name: str
    prefix: str = Field(description="``scim_<public id>``: how the token starts.")
    created_at: str


class ScimTokenCreatedOut(ScimTokenOut):
    """A new token: ``token`` is shown this once."""

    token: str


class ScimTokenPage(BaseModel):
    items: list[ScimTokenOut]
    next_cursor: str | None = None


def _out(row: ScimToken) -> dict[str, str]:
    return {
        "id": str(row.id),
        "name": row.name,
        "prefix": f"{SCIM_TOKEN_PREFIX}{row.public_id}",
        "created_at": row.created_at.isoformat(),
    }


class ScimTokenRoutes:
    """Create, list and revoke the current tenant's SCIM tokens (``tenant.manage``, signed-in users only).

    Args:
        tokens: The token service.
        max_json_depth: Deepest JSON body accepted.
    """

    def __init__(self, tokens: ScimTokens, *, max_json_depth: int = 32) -> None:
        self.tokens = tokens
        self.depth = max_json_depth

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/tenant/scim-tokens", self.create, methods=["POST"], name="scim-tokens:create"),
            Route("/tenant/scim-tokens", self.list_tokens, methods=["GET"], name="scim-tokens:list"),
            Route(
                "/tenant/scim-tokens/{token_id}", self.revoke, methods=["DELETE"], name="scim-tokens:revoke"
            ),
        ]

    @describe(
        summary="Create a SCIM token (shown once)",
        body=ScimTokenIn,
        response=ScimTokenCreatedOut,
        status=201,
        tags=["scim"],
    )
    @requires_permissions("tenant.manage", session=True)
    async def create(self, request: Request) -> Response:
        principal, tenant, _, _ = await current_permissions(request)
        body = await parse_body(request, ScimTokenIn, max_depth=self.depth)
        row, token = await self.tokens.create(tenant.id, name=body.name, creator_id=principal.user_id)
        out = ScimTokenCreatedOut.model_validate({**_out(row), "token": token})
        return json_response(out, 201, headers=NO_STORE)

    @describe(summary="The tenant's SCIM tokens (never their secrets)", response=ScimTokenPage, tags=["scim"])
    @requires_permissions("tenant.manage", session=True)
    async def list_tokens(self, request: Request) -> Response:
        _, tenant, _, _ = await current_permissions(request)
        rows = await self.tokens.list(tenant.id)
        page = ScimTokenPage(items=[ScimTokenOut.model_validate(_out(row)) for row in rows])
        return json_response(page, headers=NO_STORE)

    @describe(
        summary="Revoke a SCIM token: it stops working at once",
        status=204,
        responses={404: "No such token in this tenant."},
        tags=["scim"],
    )
    @requires_permissions("tenant.manage", session=True)
    async def revoke(self, request: Request) -> Response:
        principal, tenant, _, _ = await current_permissions(request)
        token_id = path_uuid(request, "token_id", missing="No such SCIM token.")
        await self.tokens.revoke(tenant.id, token_id, actor_id=principal.user_id)
        return Response(status_code=204)
