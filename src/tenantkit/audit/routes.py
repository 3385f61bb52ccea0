"""``GET /audit``: the current tenant's audit log, for holders of ``audit.read``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BeforeValidator, Field, StringConstraints
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tenantkit.audit.log import AuditLog, AuditQuery
from tenantkit.http import RequestModel, parse_query
from tenantkit.normalize import StorableText
from tenantkit.openapi import describe
from tenantkit.openapi.schemas import AuditPage
from tenantkit.pagination import CursorParam
from tenantkit.rbac.decorators import current_permissions, requires_permissions

__all__ = ["AuditQueryParams", "AuditRoutes"]


def _timestamp(value: object) -> object:
    """ISO 8601 (``Z`` or an offset; ``+`` may arrive as a space); naive times are UTC."""
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise ValueError("must be an ISO 8601 timestamp") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]


class AuditQueryParams(RequestModel):
    """Query of ``GET /audit`` (an unknown parameter is a 422, a malformed cursor a 400)."""

    action: Annotated[str, StringConstraints(min_length=1, max_length=64), StorableText()] | None = Field(
        default=None, description="Only events with this action (`role.created`)."
    )
    actor_id: uuid.UUID | None = Field(default=None, description="Only events by this user.")
    since: Timestamp | None = Field(default=None, description="Only events at or after this time.")
    until: Timestamp | None = Field(default=None, description="Only events before this time.")
    limit: int = Field(default=50, ge=1, le=500, description="Page size.")
    cursor: CursorParam | None = None


class AuditRoutes:
    """``GET /audit``: the current tenant's audit log, filtered and paged."""

    def __init__(self, audit_log: AuditLog) -> None:
        self.audit_log = audit_log

    def routes(self) -> list[BaseRoute]:
        """The audit log route."""
        return [Route("/audit", self.list_events, methods=["GET"], name="audit:list")]

    @describe(
        summary="The tenant's audit log, newest first",
        query=AuditQueryParams,
        response=AuditPage,
        tags=["audit"],
    )
    @requires_permissions("audit.read")
    async def list_events(self, request: Request) -> Response:
        _, tenant, _, _ = await current_permissions(request)
        query = parse_query(request, AuditQueryParams)
        await self.audit_log.flush()  # this instance's buffered events are readable at once
        items, next_cursor = await self.audit_log.query(AuditQuery(tenant.id, **query.model_dump()))
        return JSONResponse(
            {"items": items, "next_cursor": next_cursor}, headers={"Cache-Control": "no-store"}
        )
