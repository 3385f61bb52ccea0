"""``/api-keys``: a tenant's service-account keys, for holders of ``api_keys.manage``."""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tenantkit.auth.apikeys import API_KEY_PREFIX, ApiKeys
from tenantkit.auth.schemas import ApiKeyCreatedOut, ApiKeyIn, ApiKeyOut, ApiKeyPage
from tenantkit.db.models import ApiKey
from tenantkit.http import NO_STORE, json_response, parse_body, path_uuid
from tenantkit.openapi import describe
from tenantkit.rbac.decorators import current_permissions, requires_permissions

__all__ = ["ApiKeyRoutes"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _out(row: ApiKey) -> dict[str, object]:
    return {
        "id": str(row.id),
        "name": row.name,
        "prefix": f"{API_KEY_PREFIX}{row.public_id}",
        "scopes": list(row.scopes),
        "created_at": row.created_at.isoformat(),
        "expires_at": _iso(row.expires_at),
        "last_used_at": _iso(row.last_used_at),
    }


class ApiKeyRoutes:
    """Create, list and revoke the current tenant's API keys (never with an API key).

    Args:
        api_keys: The key service.
        max_json_depth: Deepest JSON body accepted.
    """

    def __init__(self, api_keys: ApiKeys, *, max_json_depth: int = 32) -> None:
        self.api_keys = api_keys
        self.depth = max_json_depth

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api-keys", self.create, methods=["POST"], name="api-keys:create"),
            Route("/api-keys", self.list_keys, methods=["GET"], name="api-keys:list"),
            Route("/api-keys/{key_id}", self.revoke, methods=["DELETE"], name="api-keys:revoke"),
        ]

    @describe(
        summary="Create an API key (shown once)",
        body=ApiKeyIn,
        response=ApiKeyCreatedOut,
        status=201,
        responses={403: "A scope you do not hold."},
        tags=["api-keys"],
    )
    @requires_permissions("api_keys.manage", session=True)
    async def create(self, request: Request) -> Response:
        principal, tenant, _, granted = await current_permissions(request)
        body = await parse_body(request, ApiKeyIn, max_depth=self.depth)
        row, key = await self.api_keys.create(
            tenant,
            creator_id=principal.user_id,
            creator_permissions=granted,
            name=body.name,
            scopes=body.scopes,
            expires_in_days=body.expires_in_days,
        )
        out = ApiKeyCreatedOut.model_validate({**_out(row), "key": key})
        return json_response(out, 201, headers=NO_STORE)

    @describe(summary="The tenant's API keys (never their secrets)", response=ApiKeyPage, tags=["api-keys"])
    @requires_permissions("api_keys.manage", session=True)
    async def list_keys(self, request: Request) -> Response:
        _, tenant, _, _ = await current_permissions(request)
        rows = await self.api_keys.list(tenant)
        page = ApiKeyPage(items=[ApiKeyOut.model_validate(_out(row)) for row in rows])
        return json_response(page, headers=NO_STORE)

    @describe(
        summary="Revoke an API key: it stops working at once",
        status=204,
        responses={404: "No such key in this tenant."},
        tags=["api-keys"],
    )
    @requires_permissions("api_keys.manage", session=True)
    async def revoke(self, request: Request) -> Response:
        principal, tenant, _, _ = await current_permissions(request)
        key_id = path_uuid(request, "key_id", missing="No such API key.")
        await self.api_keys.revoke(tenant, key_id, actor_id=principal.user_id)
        return Response(status_code=204)
