"""What ``tenantkit worker`` and ``tenantkit jobs dead-letters ...`` run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import uuid
from typing import TYPE_CHECKING

from tenantkit.jobs.runner import ALL_TENANTS

if TYPE_CHECKING:
    from tenantkit.kit import TenantKit

__all__ = ["dead_letters", "run_worker"]

logger = logging.getLogger("tenantkit.jobs")


async def run_worker(kit: TenantKit, stop: asyncio.Event | None = None) -> None:
    """Run the kit's job worker and webhook delivery loop until SIGINT/SIGTERM (or ``stop``).

    Without Redis the app process runs both itself (jobs in process, webhook
    deliveries inline); the worker then only delivers webhooks queued by
    other processes sharing the database.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    await kit.startup()
    try:
        logger.info(
            "worker started",
            extra={"broker": type(kit.jobs.broker).__name__, "tasks": sorted(kit.jobs.tasks)},
        )
        workers = [kit.jobs.run_worker(stop)]
        if not kit.inline_workers:  # startup already runs the delivery loop inline otherwise
            workers.append(kit.webhooks.run_forever(stop=stop))
        await asyncio.gather(*workers)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
        await kit.shutdown()


async def dead_letters(kit: TenantKit, args: argparse.Namespace) -> None:
    """``tenantkit jobs dead-letters list|requeue``: one JSON object per line."""
    await kit.startup()
    try:
        if args.dead_command == "list":
            scope: object = ALL_TENANTS
            if args.tenant:
                tenant = await kit.directory.find(args.tenant)
                if tenant is None:
                    raise SystemExit(f"unknown tenant {args.tenant!r}")
                scope = tenant.id
            rows, _ = await kit.jobs.dead_letters(tenant_id=scope, limit=args.limit)
            for row in rows:
                print(json.dumps(kit.jobs.dead_letter_json(row)))
        else:
            try:
                dead_letter_id = uuid.UUID(args.id)
            except ValueError:
                raise SystemExit(f"not a dead-letter id: {args.id!r}") from None
            job_id = await kit.jobs.requeue(dead_letter_id)
            kit.audit("job.requeued", target=str(dead_letter_id), data={"job_id": job_id, "via": "cli"})
            print(f"requeued {dead_letter_id} as job {job_id}")
    finally:
        await kit.shutdown()
