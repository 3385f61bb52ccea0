"""``GET /tenant`` and ``PATCH /tenant``: the current tenant's own settings, for its administrators."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StrictBool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tenantkit.context import TenantRef
from tenantkit.db.models import Tenant
from tenantkit.http import PatchModel, SafeText, json_response, parse_body
from tenantkit.openapi import describe
from tenantkit.rbac.decorators import current_permissions, request_tenant, requires_auth, requires_permissions
from tenantkit.tenancy.service import TenancyService

__all__ = ["TenantRoutes", "TenantSettingsIn", "TenantSettingsOut"]


class TenantSettingsIn(PatchModel):
    """What a tenant's administrator may change (omitted fields stay as they are)."""

    name: Annotated[SafeText, Field(min_length=1, max_length=200)] | None = None
    require_mfa: StrictBool | None = Field(
        None,
        description="Members without a second factor get 403 everywhere but their profile, 2FA and sign-out.",
    )


class TenantSettingsOut(BaseModel):
    """The current tenant."""

    id: str = Field(json_schema_extra={"format": "uuid"})
    slug: str
    name: str
    require_mfa: bool


def _out(tenant: Tenant | TenantRef) -> TenantSettingsOut:
    return TenantSettingsOut(
        id=str(tenant.id), slug=tenant.slug, name=tenant.name, require_mfa=bool(tenant.require_mfa)
    )


class TenantRoutes:
    """The current tenant's settings.

    Args:
        tenancy: The owner of tenant changes.
        max_json_depth: Deepest JSON body accepted.
    """

    def __init__(self, tenancy: TenancyService, *, max_json_depth: int = 32) -> None:
        self.tenancy = tenancy
        self.depth = max_json_depth

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/tenant", self.show, methods=["GET"], name="tenant:show"),
            Route("/tenant", self.update, methods=["PATCH"], name="tenant:update"),
        ]

    @describe(summary="The current tenant", response=TenantSettingsOut, tags=["tenant"])
    @requires_auth()
    async def show(self, request: Request) -> Response:
        await current_permissions(request)  # members only
        return json_response(_out(request_tenant(request)))

    @describe(
        summary="Rename the tenant or require two-factor sign-in of its members",
        body=TenantSettingsIn,
        response=TenantSettingsOut,
        tags=["tenant"],
    )
    @requires_permissions("tenant.manage")
    async def update(self, request: Request) -> Response:
        principal, tenant, _, _ = await current_permissions(request)
        body = await parse_body(request, TenantSettingsIn, max_depth=self.depth)
        updated = await self.tenancy.update_tenant(
            tenant.id, actor_id=principal.user_id, name=body.name, require_mfa=body.require_mfa
        )
        return json_response(_out(updated))
