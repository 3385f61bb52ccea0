"""Admin endpoints for dead letters: ``GET /jobs/dead-letters`` and ``POST .../{id}/requeue``.

Both need ``jobs.manage``. A platform operator (``SUPER_ADMIN``) sees every
tenant's dead letters and the platform's own (``tenant_id: null``); a tenant
admin sees and requeues only the current tenant's. Requeuing here is the one
requeue path of every job, webhook deliveries included.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from pydantic import Field
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tenantkit.db.engine import Database
from tenantkit.db.models import User
from tenantkit.errors import NotFoundError
from tenantkit.events import NIL_TENANT
from tenantkit.http import RequestModel, parse_query, path_uuid
from tenantkit.jobs.deadletters import ALL_TENANTS
from tenantkit.jobs.runner import JobRunner
from tenantkit.openapi import describe
from tenantkit.openapi.schemas import DeadLetterPage, RequeuedJobOut
from tenantkit.pagination import CursorParam
from tenantkit.rbac.decorators import current_permissions, requires_permissions
from tenantkit.rbac.roles import SUPER_ADMIN

__all__ = ["AuditWriter", "DeadLetterQuery", "DeadLetterRoutes", "job_routes"]


class AuditWriter(Protocol):
    """Records audit events (``tenantkit.events.Events``)."""

    def audit(
        self,
        action: str,
        *,
        tenant_id: uuid.UUID | None,
        actor_id: uuid.UUID | None = None,
        target: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Any:
        """Record one event."""


class DeadLetterQuery(RequestModel):
    """Query of ``GET /jobs/dead-letters`` (an unknown parameter is a 422, a malformed cursor a 400)."""

    limit: int = Field(default=50, ge=1, le=500, description="Page size.")
    cursor: CursorParam | None = None


class DeadLetterRoutes:
    """The dead-letter administration handlers.

    Args:
        jobs: The job runner whose dead letters are shown and requeued.
        database: Reads the caller's platform-operator flag.
        audit: Records ``job.requeued``.
    """

    def __init__(self, jobs: JobRunner, database: Database, audit: AuditWriter) -> None:
        self.jobs = jobs
        self.database = database
        self.audit = audit

    async def _scope(self, request: Request) -> tuple[uuid.UUID, object]:
        principal, tenant, role, _ = await current_permissions(request)
        if role == SUPER_ADMIN:
            async with self.database.session() as session:
                flag = await session.scalar(select(User.is_superadmin).where(User.id == principal.user_id))
            if flag:
                return principal.user_id, ALL_TENANTS
        return principal.user_id, tenant.id

    @describe(
        summary="List dead-lettered jobs",
        query=DeadLetterQuery,
        response=DeadLetterPage,
        tags=["jobs"],
    )
    @requires_permissions("jobs.manage")
    async def list_dead_letters(self, request: Request) -> Response:
        """``GET /jobs/dead-letters?limit=&cursor=``: newest first."""
        query = parse_query(request, DeadLetterQuery)
        _, scope = await self._scope(request)
        rows, next_cursor = await self.jobs.dead_letters(
            tenant_id=scope, limit=query.limit, cursor=query.cursor
        )
        return JSONResponse(
            {"items": [self.jobs.dead_letter_json(r) for r in rows], "next_cursor": next_cursor},
            headers={"Cache-Control": "no-store"},
        )

    @describe(summary="Requeue a dead-lettered job", response=RequeuedJobOut, status=202, tags=["jobs"])
    @requires_permissions("jobs.manage")
    async def requeue(self, request: Request) -> Response:
        """``POST /jobs/dead-letters/{id}/requeue``: 202 with the new job id."""
        actor, scope = await self._scope(request)
        dead_letter_id = path_uuid(request, "dead_letter_id", missing="No such dead letter.")
        row = await self.jobs.dead_letter(dead_letter_id)
        if row is None or (scope is not ALL_TENANTS and row.tenant_id != scope):
            raise NotFoundError("No such dead letter.")
        job_id = await self.jobs.requeue(dead_letter_id)
        self.audit.audit(
            "job.requeued",
            tenant_id=None if row.tenant_id == NIL_TENANT else row.tenant_id,
            actor_id=actor,
            target=str(dead_letter_id),
            data={"task_name": row.task_name, "job_id": job_id},
        )
        return JSONResponse({"id": str(dead_letter_id), "job_id": job_id}, status_code=202)

    def routes(self) -> list[BaseRoute]:
        """The Starlette routes."""
        return [
            Route("/jobs/dead-letters", self.list_dead_letters, methods=["GET"], name="jobs:dead-letters"),
            Route(
                "/jobs/dead-letters/{dead_letter_id}/requeue",
                self.requeue,
                methods=["POST"],
                name="jobs:requeue",
            ),
        ]


def job_routes(jobs: JobRunner, database: Database, audit: AuditWriter) -> list[BaseRoute]:
    """The dead-letter administration routes."""
    return DeadLetterRoutes(jobs, database, audit).routes()
