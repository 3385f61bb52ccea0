"""Admin endpoints for dead letters: ``GET /jobs/dead-letters`` and ``POST .../{id}/requeue``.

Both need ``jobs.manage``. A platform operator (``SUPER_ADMIN``) sees every
tenant's dead letters and the platform's own (``tenant_id: null``); a tenant
admin sees and requeues only the current tenant's.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tenantkit.db.models import User
from tenantkit.errors import NotFoundError, ValidationError
from tenantkit.http import path_uuid
from tenantkit.jobs.models import NIL_TENANT
from tenantkit.jobs.runner import ALL_TENANTS
from tenantkit.rbac.decorators import current_permissions, requires_permissions
from tenantkit.rbac.roles import SUPER_ADMIN

if TYPE_CHECKING:
    from tenantkit.kit import TenantKit

__all__ = ["job_routes"]


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise ValidationError(
            [{"loc": ["query", "limit"], "msg": "must be an integer from 1 to 500", "type": "value_error"}]
        )
    return int(raw)


def job_routes(kit: TenantKit) -> list[BaseRoute]:
    """The dead-letter administration routes."""

    async def scope_of(request: Request) -> tuple[uuid.UUID, object]:
        principal, tenant, role, _ = await current_permissions(request)
        if role == SUPER_ADMIN:
            async with kit.database.session() as session:
                flag = await session.scalar(select(User.is_superadmin).where(User.id == principal.user_id))
            if flag:
                return principal.user_id, ALL_TENANTS
        return principal.user_id, tenant.id

    @requires_permissions("jobs.manage")
    async def list_dead_letters(request: Request) -> Response:
        _, scope = await scope_of(request)
        rows, next_cursor = await kit.jobs.dead_letters(
            tenant_id=scope, limit=_limit(request), cursor=request.query_params.get("cursor")
        )
        return JSONResponse(
            {"items": [kit.jobs.dead_letter_json(r) for r in rows], "next_cursor": next_cursor},
            headers={"Cache-Control": "no-store"},
        )

    @requires_permissions("jobs.manage")
    async def requeue(request: Request) -> Response:
        actor, scope = await scope_of(request)
        dead_letter_id = path_uuid(request, "dead_letter_id", missing="No such dead letter.")
        row = await kit.jobs.dead_letter(dead_letter_id)
        if row is None or (scope is not ALL_TENANTS and row.tenant_id != scope):
            raise NotFoundError("No such dead letter.")
        job_id = await kit.jobs.requeue(dead_letter_id)
        kit.audit(
            "job.requeued",
            tenant_id=None if row.tenant_id == NIL_TENANT else row.tenant_id,
            actor_id=actor,
            target=str(dead_letter_id),
            data={"task_name": row.task_name, "job_id": job_id},
        )
        return JSONResponse({"id": str(dead_letter_id), "job_id": job_id}, status_code=202)

    return [
        Route("/jobs/dead-letters", list_dead_letters, methods=["GET"], name="jobs:dead-letters"),
        Route(
            "/jobs/dead-letters/{dead_letter_id}/requeue",
            requeue,
            methods=["POST"],
            name="jobs:requeue",
        ),
    ]
