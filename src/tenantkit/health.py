"""``GET /health``: real database and store checks; 503 naming the failing part."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tenantkit.errors import problem_response
from tenantkit.openapi import describe
from tenantkit.openapi.schemas import HealthOut

if TYPE_CHECKING:
    from tenantkit.kit import TenantKit

__all__ = ["health_endpoint"]

logger = logging.getLogger("tenantkit.health")


def health_endpoint(kit: TenantKit, *, timeout: float = 3.0) -> Callable[[Request], Awaitable[Response]]:
    """Build the health endpoint for ``kit``."""

    async def check_database() -> str:
        try:
            await kit.database.ping(timeout)
        except Exception as exc:
            logger.warning("health: database unreachable: %s", type(exc).__name__)
            return "unavailable"
        return "connected"

    async def check_store() -> str:
        try:
            async with asyncio.timeout(timeout):
                await kit.store.ping()
        except Exception as exc:
            logger.warning("health: redis unreachable: %s", type(exc).__name__)
            return "unavailable"
        return "in-memory" if kit.store.name == "in-memory" else "connected"

    @describe(
        summary="Liveness with real database and store checks",
        response=HealthOut,
        responses={503: "A backing service is unavailable (named in the problem)."},
        tags=["platform"],
        public=True,
    )
    async def health(request: Request) -> Response:
        database, redis = await asyncio.gather(check_database(), check_store())
        checks = {"database": database, "redis": redis}
        failing = [name for name, state in checks.items() if state == "unavailable"]
        if failing:
            return problem_response(
                503,
                f"unavailable: {', '.join(failing)}",
                type_="service-unavailable",
                checks=checks,
                **checks,
                headers={"Cache-Control": "no-store", "Retry-After": "5"},
            )
        return JSONResponse({"status": "ok", **checks}, headers={"Cache-Control": "no-store"})

    return health
