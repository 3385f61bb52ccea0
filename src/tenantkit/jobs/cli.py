"""What ``tenantkit worker`` and ``tenantkit jobs dead-letters ...`` run.

These take the application object the CLI loaded (the kit) typed by the small
protocols below, never the kit class itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import uuid
from typing import Any, Protocol

from tenantkit.context import TenantRef
from tenantkit.jobs.deadletters import ALL_TENANTS
from tenantkit.jobs.runner import JobRunner

__all__ = ["DeadLetterHost", "TenantFinder", "WorkerHost", "dead_letters", "run_worker"]

logger = logging.getLogger("tenantkit.jobs")


class WorkerHost(Protocol):
    """What the worker needs of the application: its job runner and its life cycle."""

    @property
    def jobs(self) -> JobRunner:
        """The job runner."""

    async def startup(self) -> None:
        """Open the database, stores and broker."""

    async def shutdown(self) -> None:
        """Close them."""


class TenantFinder(Protocol):
    """Finds a tenant by slug or id (``TenantDirectory``)."""

    async def find(self, identifier: str) -> TenantRef | None:
        """The tenant, or ``None``."""


class DeadLetterHost(WorkerHost, Protocol):
    """What the dead-letter commands need besides the runner."""

    @property
    def directory(self) -> TenantFinder:
        """Tenant lookup."""

    def audit(
        self,
        action: str,
        *,
        tenant_id: uuid.UUID | None = None,
        target: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Any:
        """Record an audit event."""


def _signals(stop: asyncio.Event, *, add: bool) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            if add:
                loop.add_signal_handler(signum, stop.set)
            else:
                loop.remove_signal_handler(signum)


async def run_worker(app: WorkerHost, stop: asyncio.Event | None = None) -> None:
    """Run the job worker until SIGINT/SIGTERM (or ``stop``).

    With Redis it consumes the job stream (webhook deliveries included) and
    runs the periodic work (the webhook outbox relay, heartbeats). Without
    Redis the application process runs jobs itself, and this only waits.
    """
    stop = stop or asyncio.Event()
    _signals(stop, add=True)
    await app.startup()
    try:
        runner = app.jobs
        logger.info(
            "worker started", extra={"broker": type(runner.broker).__name__, "tasks": sorted(runner.tasks)}
        )
        await runner.run_worker(stop)
    finally:
        _signals(stop, add=False)
        await app.shutdown()


async def dead_letters(app: DeadLetterHost, args: argparse.Namespace) -> None:
    """``tenantkit jobs dead-letters list|requeue``: one JSON object per line."""
    await app.startup()
    try:
        runner = app.jobs
        if args.dead_command == "list":
            scope: object = ALL_TENANTS
            if args.tenant:
                tenant = await app.directory.find(args.tenant)
                if tenant is None:
                    raise SystemExit(f"unknown tenant {args.tenant!r}")
                scope = tenant.id
            rows, _ = await runner.dead_letters(tenant_id=scope, limit=args.limit)
            for row in rows:
                print(json.dumps(runner.dead_letter_json(row)))
        else:
            try:
                dead_letter_id = uuid.UUID(args.id)
            except ValueError:
                raise SystemExit(f"not a dead-letter id: {args.id!r}") from None
            job_id = await runner.requeue(dead_letter_id)
            app.audit(
                "job.requeued",
                tenant_id=None,
                target=str(dead_letter_id),
                data={"job_id": job_id, "via": "cli"},
            )
            print(f"requeued {dead_letter_id} as job {job_id}")
    finally:
        await app.shutdown()
