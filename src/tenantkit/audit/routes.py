"""``GET /audit``: the current tenant's audit log, for holders of ``audit.read``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tenantkit.audit.log import AuditLog, AuditQuery
from tenantkit.errors import ValidationError
from tenantkit.rbac.decorators import current_permissions, requires_permissions

__all__ = ["AuditRoutes"]

_ALLOWED = {"action", "actor_id", "since", "until", "limit", "cursor"}


def _parse(request: Request) -> dict[str, Any]:
    params = request.query_params
    errors: list[dict[str, Any]] = []
    values: dict[str, Any] = {}

    def fail(name: str, message: str) -> None:
        errors.append({"loc": ["query", name], "msg": message, "type": "value_error"})

    for name in params:
        if name not in _ALLOWED:
            fail(name, "unknown query parameter")
    if params.get("action"):
        values["action"] = params["action"][:64]
    if params.get("actor_id"):
        try:
            values["actor_id"] = uuid.UUID(params["actor_id"])
        except ValueError:
            fail("actor_id", "must be a UUID")
    for name in ("since", "until"):
        if params.get(name):
            try:
                moment = datetime.fromisoformat(params[name].replace("Z", "+00:00").replace(" ", "+"))
            except ValueError:
                fail(name, "must be an ISO 8601 timestamp")
                continue
            values[name] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raw_limit = params.get("limit", "50")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 500:
        fail("limit", "must be an integer from 1 to 500")
    else:
        values["limit"] = int(raw_limit)
    if params.get("cursor"):
        values["cursor"] = params["cursor"]
    if errors:
        raise ValidationError(errors)
    return values


class AuditRoutes:
    """``GET /audit``: the current tenant's audit log, filtered and paged."""

    def __init__(self, audit_log: AuditLog) -> None:
        self.audit_log = audit_log

    def routes(self) -> list[BaseRoute]:
        """The audit log route."""
        return [Route("/audit", self.list_events, methods=["GET"], name="audit:list")]

    @requires_permissions("audit.read")
    async def list_events(self, request: Request) -> Response:
        _, tenant, _, _ = await current_permissions(request)
        filters = _parse(request)
        await self.audit_log.flush()  # this instance's buffered events are readable at once
        items, next_cursor = await self.audit_log.query(AuditQuery(tenant.id, **filters))
        return JSONResponse(
            {"items": items, "next_cursor": next_cursor}, headers={"Cache-Control": "no-store"}
        )
