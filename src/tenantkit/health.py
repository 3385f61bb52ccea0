"""``GET /health``: real database and store checks, and whether a job worker is consuming.

503 names the failing backing service. ``workers`` is informational and never
turns the answer into a 503 (an API whose workers are down still serves
requests; alert on ``"workers": "none"`` instead): ``"in-process"`` on the
embedded default (the app process runs jobs itself), ``"ok"`` when a worker
sent its heartbeat within the last three intervals, ``"none"`` otherwise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tenantkit.errors import problem_response
from tenantkit.openapi import describe

__all__ = ["HealthOut", "Pingable", "Store", "WorkerStatus", "health_endpoint"]

logger = logging.getLogger("tenantkit.health")


class Pingable(Protocol):
    """The database (``tenantkit.db.Database``)."""

    async def ping(self, timeout: float = 3.0) -> None:
        """Raise unless the database answers within ``timeout``."""


class Store(Protocol):
    """The key-value store (``tenantkit.stores.Store``)."""

    name: str

    async def ping(self) -> None:
        """Raise unless the store answers."""


class WorkerStatus(Protocol):
    """Tells whether a job worker consumes (``tenantkit.jobs.JobRunner``)."""

    async def worker_status(self) -> str:
        """``"in-process"``, ``"ok"`` or ``"none"``."""


class HealthOut(BaseModel):
    """Every backing service is reachable."""

    status: Literal["ok"]
    database: str = Field(description='"connected".')
    redis: str = Field(description='"connected", or "in-memory" on the embedded default.')
    workers: str = Field(
        description='"ok" when a job worker is consuming, "none" when none is, '
        '"in-process" on the embedded default.'
    )


def health_endpoint(
    database: Pingable, store: Store, workers: WorkerStatus | None = None, *, timeout: float = 3.0
) -> Callable[[Request], Awaitable[Response]]:
    """Build the health endpoint over these collaborators."""

    async def check_database() -> str:
        try:
            await database.ping(timeout)
        except Exception as exc:
            logger.warning("health: database unreachable: %s", type(exc).__name__)
            return "unavailable"
        return "connected"

    async def check_store() -> str:
        try:
            async with asyncio.timeout(timeout):
                await store.ping()
        except Exception as exc:
            logger.warning("health: redis unreachable: %s", type(exc).__name__)
            return "unavailable"
        return "in-memory" if store.name == "in-memory" else "connected"

    async def check_workers() -> str:
        if workers is None:
            return "in-process"
        try:
            async with asyncio.timeout(timeout):
                return await workers.worker_status()
        except Exception as exc:
            logger.warning("health: worker status unknown: %s", type(exc).__name__)
            return "none"

    @describe(
        summary="Liveness with real database and store checks, and the job workers' status",
        response=HealthOut,
        responses={503: "A backing service is unavailable (named in the problem)."},
        tags=["platform"],
        public=True,
        rate_limited=False,
    )
    async def health(request: Request) -> Response:
        database_state, redis_state, worker_state = await asyncio.gather(
            check_database(), check_store(), check_workers()
        )
        checks = {"database": database_state, "redis": redis_state}
        failing = [name for name, state in checks.items() if state == "unavailable"]
        if failing:
            return problem_response(
                503,
                f"unavailable: {', '.join(failing)}",
                type_="service-unavailable",
                checks=checks,
                **checks,
                workers=worker_state,
                headers={"Cache-Control": "no-store", "Retry-After": "5"},
            )
        body = HealthOut(status="ok", database=database_state, redis=redis_state, workers=worker_state)
        return JSONResponse(body.model_dump(), headers={"Cache-Control": "no-store"})

    return health
