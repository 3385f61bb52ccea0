"""The platform operators' tenant API: ``GET /admin/tenants``, ``PATCH /admin/tenants/{id}``."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tenantkit.db.models import Tenant
from tenantkit.errors import PermissionDeniedError
from tenantkit.events import Events
from tenantkit.http import json_response, parse_body, path_uuid
from tenantkit.openapi import describe
from tenantkit.rbac.decorators import current_permissions, requires_permissions
from tenantkit.tenancy.schemas import TenantOut, TenantPage, TenantPatchIn, iso
from tenantkit.tenancy.service import TenancyService

__all__ = ["PlatformRoutes"]


def tenant_out(tenant: Tenant) -> TenantOut:
    return TenantOut(
        id=str(tenant.id),
        slug=tenant.slug,
        name=tenant.name,
        status=tenant.status,
        open_signup=tenant.open_signup,
        created_at=iso(tenant.created_at),
    )


class PlatformRoutes:
    """Tenant management for platform operators (SUPER_ADMIN users flagged as operators).

    Args:
        tenancy: The owner of tenant changes.
        events: Where the listing's audit row goes.
        max_json_depth: Deepest JSON body accepted.
    """

    def __init__(self, tenancy: TenancyService, events: Events, *, max_json_depth: int = 32) -> None:
        self.tenancy = tenancy
        self.events = events
        self.depth = max_json_depth

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/admin/tenants", self.list_tenants, methods=["GET"], name="admin:tenants"),
            Route("/admin/tenants/{tenant_id}", self.patch_tenant, methods=["PATCH"], name="admin:tenant"),
        ]

    async def _operator(self, request: Request) -> uuid.UUID:
        principal, _, _, _ = await current_permissions(request)
        if not await self.tenancy.is_operator(principal.user_id):
            raise PermissionDeniedError("Platform operators only.")
        return principal.user_id

    @describe(summary="Every tenant (platform operators)", response=TenantPage, tags=["admin"])
    @requires_permissions("tenants.manage")
    async def list_tenants(self, request: Request) -> Response:
        actor = await self._operator(request)
        tenants = await self.tenancy.list_tenants()
        self.events.audit("admin.tenants_listed", tenant_id=None, actor_id=actor)
        return json_response(TenantPage(items=[tenant_out(t) for t in tenants]))

    @describe(
        summary="Suspend, reactivate or rename a tenant (platform operators)",
        body=TenantPatchIn,
        response=TenantOut,
        responses={404: "No such tenant."},
        tags=["admin"],
    )
    @requires_permissions("tenants.manage")
    async def patch_tenant(self, request: Request) -> Response:
        actor = await self._operator(request)
        tenant_id = path_uuid(request, "tenant_id", missing="No such tenant.")
        body = await parse_body(request, TenantPatchIn, max_depth=self.depth)
        tenant = await self.tenancy.update_tenant(
            tenant_id, actor_id=actor, **body.model_dump(exclude_none=True)
        )
        return json_response(tenant_out(tenant))
