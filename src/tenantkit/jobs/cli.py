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
import multiprocessing
import signal
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

from tenantkit.context import TenantRef
from tenantkit.jobs.deadletters import ALL_TENANTS
from tenantkit.jobs.runner import JobRunner

__all__ = ["DeadLetterHost", "TenantFinder", "WorkerHost", "dead_letters", "run_worker", "supervise"]

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


def _child(target: Callable[[], None]) -> None:
    """A worker process: the default signal handlers (not the supervisor's), then ``target``."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    target()


def supervise(
    target: Callable[[], None],
    processes: int,
    *,
    grace: float = 30.0,
    crash_window: float = 5.0,
    poll: float = 0.5,
) -> int:
    """Run ``target`` in ``processes`` child processes until SIGINT/SIGTERM (``worker --workers N``).

    Each child calls ``target``, a picklable callable that builds the
    application and runs :func:`run_worker`. Children are forked where the
    platform can (the parent has imported the application but opened nothing
    and runs no thread, so a child starts at once), fresh interpreters
    (``spawn``) elsewhere.
    The children share nothing but the database and Redis: the job stream's
    consumer group hands each job to one of them, so any number of workers
    run a job once. A child that dies after running a while is restarted; one
    that dies within ``crash_window`` seconds of its start (a configuration
    error) stops them all, with its exit code. On SIGINT/SIGTERM every child
    gets SIGTERM, finishes its running jobs and has ``grace`` seconds to exit
    before it is killed.

    Returns:
        The exit code: 0 after a requested stop.
    """
    context: multiprocessing.context.ForkContext | multiprocessing.context.SpawnContext = (
        multiprocessing.get_context("fork")
        if "fork" in multiprocessing.get_all_start_methods()
        else multiprocessing.get_context("spawn")
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}

    def start(number: int) -> tuple[multiprocessing.process.BaseProcess, float]:
        child = context.Process(target=_child, args=(target,), name=f"tenantkit-worker-{number}")
        child.start()
        return child, time.monotonic()

    children: list[tuple[multiprocessing.process.BaseProcess, float]] = []
    code = 0
    try:
        children = [start(number) for number in range(processes)]
        logger.info("worker processes started", extra={"pids": [child.pid for child, _ in children]})
        while not stop.wait(poll):
            for number, (child, started) in enumerate(children):
                if child.is_alive() or stop.is_set():
                    continue
                if time.monotonic() - started < crash_window:
                    logger.error(
                        "worker process %s exited at start (%s); stopping", child.pid, child.exitcode
                    )
                    code = child.exitcode or 1
                    stop.set()
                    break
                logger.warning("worker process %s exited (%s); restarting it", child.pid, child.exitcode)
                children[number] = start(number)
    finally:
        for child, _ in children:
            if child.is_alive():
                child.terminate()  # SIGTERM: run_worker stops after its running jobs
        deadline = time.monotonic() + grace
        for child, _ in children:
            child.join(max(0.0, deadline - time.monotonic()))
            if child.is_alive():
                logger.warning("worker process %s did not stop in %ss; killing it", child.pid, grace)
                child.kill()
                child.join()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code


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
