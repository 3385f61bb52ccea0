"""``JobRunner`` (``kit.jobs``): register tasks, queue them, run them, retry them.

Tasks are plain ``async def`` functions registered with ``@kit.jobs.task()``.
``enqueue`` copies the current tenant id and request id into the job's labels
(the :class:`~tenantkit.jobs.middleware.JobContextMiddleware` does it), and the
worker restores them, so tenant-scoped ORM code works inside tasks. A failed
attempt is retried after an exponential backoff with jitter; after the last
attempt the job becomes a row of ``dead_letters``, which operators list and
requeue (``tenantkit jobs dead-letters``, ``GET /jobs/dead-letters``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import and_, or_, select, update
from taskiq import AsyncBroker, AsyncTaskiqDecoratedTask, InMemoryBroker, TaskiqMessage
from taskiq.kicker import AsyncKicker

from tenantkit.audit.log import decode_cursor, encode_cursor
from tenantkit.db.base import utcnow
from tenantkit.errors import NotFoundError
from tenantkit.jobs.broker import create_broker
from tenantkit.jobs.middleware import JobContextMiddleware
from tenantkit.jobs.models import NIL_TENANT, DeadLetter
from tenantkit.mail import Mail
from tenantkit.tenancy.scoping import tenant_scope, unscoped

if TYPE_CHECKING:
    from tenantkit.kit import TenantKit

__all__ = ["ALL_TENANTS", "SEND_MAIL", "JobRunner", "backoff_delay"]

logger = logging.getLogger("tenantkit.jobs")

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

#: The task ``TenantKit.send_mail`` queues for deferred mailers (SMTP).
SEND_MAIL = "tenantkit.send_mail"
#: Pass as ``tenant_id`` to :meth:`JobRunner.dead_letters` to list every tenant's.
ALL_TENANTS = object()
_LABELS_NOT_COPIED = {"attempt", "max_attempts"}


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait before retrying after failed ``attempt`` (1-based).

    Exponential (``base * 2**(attempt-1)``, at most ``cap``) with "equal
    jitter": half of it fixed, half random, so retries of many jobs failing
    together spread out instead of hammering the service in step.
    """
    ceiling = float(min(cap, base * 2.0 ** max(0, attempt - 1)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - not for security


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class JobRunner:
    """The kit's background jobs on a taskiq broker.

    Args:
        kit: The kit whose settings, database, hooks and metrics jobs use.
        broker: A broker to use instead of :func:`~tenantkit.jobs.create_broker`'s.

    Example:
        ```python
        @kit.jobs.task(name="reports.build", max_attempts=3)
        async def build_report(report_id: str) -> None:
            async with kit.database.session() as session:  # scoped to the job's tenant
                ...

        await kit.jobs.enqueue("reports.build", report_id)
        ```
    """

    def __init__(self, kit: TenantKit, broker: AsyncBroker | None = None) -> None:
        self.kit = kit
        settings = kit.settings
        self.broker: AsyncBroker = broker if broker is not None else create_broker(settings)
        self.broker.add_middlewares(JobContextMiddleware(self))
        self.max_attempts = settings.job_max_attempts
        self.retry_base = settings.job_retry_base_seconds
        self.retry_cap = settings.job_retry_max_seconds
        self.in_process = isinstance(self.broker, InMemoryBroker)
        self._delayed_key = f"{settings.redis_key_prefix}jobs:delayed"
        self._redis: Any = None
        self._retries: set[asyncio.Task[None]] = set()
        self._started = False
        self._names: dict[Callable[..., Any], str] = {}
        self.task(name=SEND_MAIL)(self._send_mail)

    def __repr__(self) -> str:
        return f"JobRunner(broker={type(self.broker).__name__}, tasks={sorted(self.broker.get_all_tasks())})"

    # ------------------------------------------------------------------ #
    # Registering and queuing
    # ------------------------------------------------------------------ #

    def task(self, name: str | None = None, *, max_attempts: int | None = None) -> Callable[[F], F]:
        """Register an ``async def`` function as a task (the function is returned unchanged).

        Args:
            name: The task's name (default: ``module:function``); ``enqueue`` uses it.
            max_attempts: Attempts before the job is dead-lettered (default:
                ``Settings.job_max_attempts``).
        """

        def register(function: F) -> F:
            labels: dict[str, Any] = {}
            if max_attempts is not None:
                if max_attempts < 1:
                    raise ValueError("max_attempts must be at least 1")
                labels["max_attempts"] = max_attempts
            task_name = name or f"{function.__module__}:{function.__qualname__}"

            # taskiq renames the function it registers: hand it a wrapper, keep the original intact.
            @functools.wraps(function)
            async def run(*args: Any, **kwargs: Any) -> Any:
                return await function(*args, **kwargs)

            self.broker.register_task(run, task_name=task_name, **labels)
            self._names[function] = task_name
            return function

        return register

    @property
    def tasks(self) -> dict[str, AsyncTaskiqDecoratedTask[Any, Any]]:
        """Registered tasks by name."""
        return self.broker.get_all_tasks()

    def _kicker(self, task_name: str, labels: dict[str, Any] | None = None) -> AsyncKicker[Any, Any]:
        registered = self.broker.find_task(task_name)
        base = dict(registered.labels) if registered is not None else {}
        return AsyncKicker(task_name=task_name, broker=self.broker, labels={**base, **(labels or {})})

    async def enqueue(self, task: str | Callable[..., Any], /, *args: Any, **kwargs: Any) -> str:
        """Queue a job; returns its id.

        The current tenant id and request id travel in the job's labels and are
        restored around the task in the worker.

        Args:
            task: A task name, or a function registered with :meth:`task`.
            *args: Positional arguments (JSON-serialisable).
            **kwargs: Keyword arguments (JSON-serialisable).

        Raises:
            NotFoundError: No task with that name is registered.
        """
        name = task if isinstance(task, str) else self._name_of(task)
        if self.broker.find_task(name) is None:
            raise NotFoundError(f"No task named {name!r} is registered.")
        sent = await self._kicker(name).kiq(*args, **kwargs)
        return str(sent.task_id)

    def _name_of(self, function: Callable[..., Any]) -> str:
        if function in self._names:
            return self._names[function]
        raise NotFoundError(f"{getattr(function, '__name__', function)!r} is not a registered task.")

    async def _send_mail(self, mail: dict[str, Any]) -> None:
        await self.kit.mailer.send(Mail.from_dict(mail))

    # ------------------------------------------------------------------ #
    # Life cycle and the worker
    # ------------------------------------------------------------------ #

    async def startup(self) -> None:
        """Start the broker (the kit's ``startup`` calls it)."""
        if self._started:
            return
        if not self.in_process:
            import redis.asyncio as aioredis

            assert self.kit.settings.redis_url is not None
            self._redis = aioredis.Redis.from_url(self.kit.settings.redis_url)
        await self.broker.startup()
        self._started = True

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Wait for in-process jobs (up to ``timeout``), then stop the broker."""
        if not self._started:
            return
        self._started = False
        if isinstance(self.broker, InMemoryBroker):
            running = list(self.broker._running_tasks)
            if running:
                await asyncio.wait(running, timeout=timeout)
        for pending in list(self._retries):
            pending.cancel()
        if self._retries:
            await asyncio.wait(set(self._retries), timeout=1)
        await self.broker.shutdown()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def run_worker(self, stop: asyncio.Event) -> None:
        """Consume and run jobs until ``stop`` is set (what ``tenantkit worker`` runs).

        With the in-memory broker jobs already run in the process that queues
        them, so this only waits for ``stop``.
        """
        await self.startup()
        if self.in_process:
            await stop.wait()
            return
        from taskiq.receiver import Receiver

        self.broker.is_worker_process = True
        with ThreadPoolExecutor(max_workers=2) as executor:
            receiver = Receiver(
                self.broker,
                executor=executor,
                max_async_tasks=self.kit.settings.job_concurrency,
                run_startup=False,
                wait_tasks_timeout=30,
            )
            promoter = asyncio.create_task(self._promote_loop(stop))
            try:
                await receiver.listen(stop)
            finally:
                promoter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await promoter

    async def _promote_loop(self, stop: asyncio.Event) -> None:
        interval = min(0.25, self.retry_base)
        while not stop.is_set():
            try:
                await self.promote_due()
            except Exception as exc:
                logger.warning("delayed-job promotion failed: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def promote_due(self) -> int:
        """Queue delayed retries whose time has come (Redis only); returns how many."""
        if self._redis is None:
            return 0
        due = await self._redis.zrangebyscore(self._delayed_key, "-inf", time.time(), start=0, num=100)
        moved = 0
        for member in due:
            if await self._redis.zrem(self._delayed_key, member) != 1:
                continue  # another worker took it
            job = json.loads(member)
            await self._kicker(job["task_name"], job["labels"]).kiq(*job["args"], **job["kwargs"])
            moved += 1
        return moved

    # ------------------------------------------------------------------ #
    # Failures: retries and dead letters
    # ------------------------------------------------------------------ #

    async def call_hook(self, name: str, **kwargs: Any) -> None:
        """Call ``tenantkit_<name>``; a failing plugin is logged, never fails the job."""
        try:
            await self.kit.emit(name, **kwargs)
        except Exception:
            logger.exception("plugin hook tenantkit_%s failed", name)

    async def handle_failure(self, message: TaskiqMessage, exception: BaseException) -> None:
        """Retry ``message`` after a backoff, or dead-letter it after its last attempt."""
        labels = message.labels
        attempt = int(labels.get("attempt") or 1)
        limit = int(labels.get("max_attempts") or self.max_attempts)
        error = f"{type(exception).__name__}: {exception}"[:2000]
        dead = attempt >= limit
        self.kit.metrics.jobs.labels("failed").inc()
        logger.warning(
            "job failed",
            extra={"task": message.task_name, "attempt": attempt, "max_attempts": limit, "dead": dead},
        )
        try:
            if dead:
                await self._dead_letter(message, error, attempt)
                self.kit.metrics.jobs.labels("dead_lettered").inc()
            else:
                delay = backoff_delay(attempt, self.retry_base, self.retry_cap)
                await self._retry_later(message, {**labels, "attempt": attempt + 1}, delay)
        except Exception:
            logger.exception("could not retry or dead-letter job %s", message.task_name)
        await self.call_hook(
            "job_failed",
            task_name=message.task_name,
            tenant_id=labels.get("tenant_id") or None,
            labels=dict(labels),
            error=error,
            dead=dead,
        )

    async def _retry_later(self, message: TaskiqMessage, labels: dict[str, Any], delay: float) -> None:
        if self._redis is not None:
            job = {
                "id": uuid.uuid4().hex,
                "task_name": message.task_name,
                "args": message.args,
                "kwargs": message.kwargs,
                "labels": _json_safe(labels),
            }
            await self._redis.zadd(self._delayed_key, {json.dumps(job): time.time() + delay})
            return

        async def later() -> None:
            await asyncio.sleep(delay)
            await self._kicker(message.task_name, labels).kiq(*message.args, **message.kwargs)

        pending = asyncio.create_task(later())
        self._retries.add(pending)
        pending.add_done_callback(self._retries.discard)

    async def _dead_letter(self, message: TaskiqMessage, error: str, attempts: int) -> None:
        raw_tenant = message.labels.get("tenant_id")
        tenant_id = uuid.UUID(str(raw_tenant)) if raw_tenant else NIL_TENANT
        with tenant_scope(tenant_id):  # dead letters are tenant-owned (ORM scoping and RLS)
            async with self.kit.database.session() as session, session.begin():
                session.add(
                    DeadLetter(
                        tenant_id=tenant_id,
                        task_name=message.task_name,
                        args=_json_safe({"args": message.args, "kwargs": message.kwargs}),
                        labels=_json_safe(dict(message.labels)),
                        error=error,
                        attempts=attempts,
                    )
                )

    # ------------------------------------------------------------------ #
    # Dead letters
    # ------------------------------------------------------------------ #

    @staticmethod
    def dead_letter_json(row: DeadLetter) -> dict[str, Any]:
        """The API shape of a dead letter (``tenant_id`` null for platform jobs)."""
        return {
            "id": str(row.id),
            "tenant_id": None if row.tenant_id == NIL_TENANT else str(row.tenant_id),
            "task_name": row.task_name,
            "args": row.args.get("args", []),
            "kwargs": row.args.get("kwargs", {}),
            "labels": row.labels,
            "error": row.error,
            "attempts": row.attempts,
            "created_at": row.created_at.isoformat(),
            "requeued_at": row.requeued_at.isoformat() if row.requeued_at else None,
        }

    async def dead_letters(
        self,
        *,
        tenant_id: uuid.UUID | object | None = ALL_TENANTS,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[DeadLetter], str | None]:
        """Dead letters, newest first, and the cursor of the next page (or ``None``).

        Args:
            tenant_id: One tenant's (``None`` for jobs without a tenant), or
                :data:`ALL_TENANTS`.
            limit: Page size.
            cursor: ``next_cursor`` of the previous page.
        """
        query = select(DeadLetter).order_by(DeadLetter.created_at.desc(), DeadLetter.id.desc())
        if tenant_id is not ALL_TENANTS:
            query = query.where(DeadLetter.tenant_id == (tenant_id or NIL_TENANT))
        if cursor:
            at, last_id = decode_cursor(cursor)
            query = query.where(
                or_(
                    DeadLetter.created_at < at,
                    and_(DeadLetter.created_at == at, DeadLetter.id < last_id),
                )
            )
        scope = (
            unscoped("jobs: an operator lists every tenant's dead letters")
            if tenant_id is ALL_TENANTS
            else tenant_scope(tenant_id if isinstance(tenant_id, uuid.UUID) else NIL_TENANT)
        )
        with scope:
            async with self.kit.database.session() as session:
                rows = list((await session.scalars(query.limit(limit + 1))).all())
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
        return rows, next_cursor

    async def dead_letter(self, dead_letter_id: uuid.UUID) -> DeadLetter | None:
        """One dead letter by id, or ``None``."""
        with unscoped("jobs: find a dead letter by id (callers check its tenant)", system=True):
            async with self.kit.database.session() as session:
                found: DeadLetter | None = await session.scalar(
                    select(DeadLetter).where(DeadLetter.id == dead_letter_id)
                )
                return found

    async def requeue(self, dead_letter_id: uuid.UUID) -> str:
        """Queue a dead letter's job again with fresh attempts; returns the new job id.

        Raises:
            NotFoundError: No such dead letter.
        """
        row = await self.dead_letter(dead_letter_id)
        if row is None:
            raise NotFoundError("No such dead letter.")
        labels = {k: v for k, v in row.labels.items() if k not in _LABELS_NOT_COPIED}
        labels["attempt"] = 1
        labels["requeued_from"] = str(row.id)
        sent = await self._kicker(row.task_name, labels).kiq(
            *row.args.get("args", []), **row.args.get("kwargs", {})
        )
        with tenant_scope(row.tenant_id):
            async with self.kit.database.session() as session, session.begin():
                await session.execute(
                    update(DeadLetter)
                    .where(DeadLetter.tenant_id == row.tenant_id, DeadLetter.id == row.id)
                    .values(requeued_at=utcnow())
                )
        return str(sent.task_id)
