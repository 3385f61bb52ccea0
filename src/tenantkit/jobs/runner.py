"""``JobRunner`` (``kit.jobs``): register tasks, queue them, run them, retry them.

Tasks are plain ``async def`` functions registered with ``@kit.jobs.task()``.
``enqueue`` copies the current tenant id and request id into the job's labels
(the :class:`~tenantkit.jobs.middleware.JobContextMiddleware` does it), and the
worker restores them, so tenant-scoped ORM code works inside tasks. A failed
attempt is retried after an exponential backoff with jitter; after the last
attempt the job becomes a row of ``dead_letters``, which operators list and
requeue (``tenantkit jobs dead-letters``, ``GET /jobs/dead-letters``). This is
the one retry model of the package: webhook deliveries are jobs too.

The runner receives its collaborators (database, metrics, events, tenant
lookup, mailer, broker); it never builds a Redis client of its own: delayed
retries and worker heartbeats use the broker's connection pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from taskiq import AsyncBroker, AsyncTaskiqDecoratedTask, InMemoryBroker, TaskiqMessage
from taskiq.kicker import AsyncKicker

from tenantkit.context import TenantRef, tenant_context
from tenantkit.db.engine import Database
from tenantkit.errors import NotFoundError, ServiceUnavailableError
from tenantkit.jobs.broker import create_broker
from tenantkit.jobs.context import JobInfo
from tenantkit.jobs.deadletters import ALL_TENANTS, DeadLetterStore, dead_letter_json
from tenantkit.jobs.middleware import JobContextMiddleware
from tenantkit.jobs.models import DeadLetter
from tenantkit.jobs.types import (
    DeadJob,
    DeadLetterCallback,
    EventEmitter,
    PermanentJobError,
    TenantLookup,
    backoff_delay,
)
from tenantkit.jobs.worker import Worker
from tenantkit.mail import Mail, Mailer
from tenantkit.observability.metrics import Metrics
from tenantkit.settings import Settings

__all__ = [
    "ALL_TENANTS",
    "SEND_MAIL",
    "DeadJob",
    "EventEmitter",
    "JobRunner",
    "PermanentJobError",
    "TenantLookup",
    "backoff_delay",
]

logger = logging.getLogger("tenantkit.jobs")

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

#: The task ``TenantKit.send_mail`` queues for deferred mailers (SMTP).
SEND_MAIL = "tenantkit.send_mail"
_LABELS_NOT_COPIED = {"attempt", "max_attempts"}
_ENQUEUE_TRIES = 3


def _transient(exc: BaseException | None) -> bool:
    """A broker error worth another try: the connection, not the job (wrapped in ``SendTaskError``)."""
    while exc is not None:
        if isinstance(exc, ConnectionError | OSError | TimeoutError):
            return True
        name = type(exc).__name__
        if type(exc).__module__.split(".")[0] == "redis" and ("Connection" in name or "Timeout" in name):
            return True
        exc = exc.__cause__
    return False


class JobRunner:
    """Background jobs on a taskiq broker.

    Args:
        database: Where dead letters are kept.
        metrics: Counts jobs by outcome (``tenantkit_jobs_total``).
        broker: The taskiq broker (:func:`~tenantkit.jobs.create_broker` of the
            settings; an in-memory broker when omitted).
        events: Calls the ``tenantkit_on_job_*`` hooks.
        tenants: Restores the job's tenant (slug, name) in the worker.
        mailer: When given, the ``tenantkit.send_mail`` task sends through it.
        max_attempts: Attempts before a job is dead-lettered (per task overridable).
        retry_base: Seconds before the first retry (doubling each time).
        retry_cap: Longest wait between two attempts.
        concurrency: Jobs one worker runs at the same time.
        key_prefix: Prefix of the Redis keys (delayed retries, worker heartbeats).
        heartbeat_seconds: How often a worker says it is alive.

    Example:
        ```python
        @kit.jobs.task(name="reports.build", max_attempts=3)
        async def build_report(report_id: str) -> None:
            async with database.session() as session:  # scoped to the job's tenant
                ...

        await kit.jobs.enqueue("reports.build", report_id)
        ```
    """

    def __init__(
        self,
        *,
        database: Database,
        metrics: Metrics,
        broker: AsyncBroker | None = None,
        events: EventEmitter | None = None,
        tenants: TenantLookup | None = None,
        mailer: Mailer | None = None,
        max_attempts: int = 5,
        retry_base: float = 1.0,
        retry_cap: float = 300.0,
        concurrency: int = 10,
        key_prefix: str = "tk:",
        heartbeat_seconds: float = 5.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if retry_base < 0 or retry_cap < 0:
            raise ValueError("retry_base and retry_cap cannot be negative")
        self.database = database
        self.metrics = metrics
        self.events = events
        self.tenants = tenants
        self.mailer = mailer
        self.broker: AsyncBroker = broker if broker is not None else InMemoryBroker(max_stored_results=100)
        self.broker.add_middlewares(JobContextMiddleware(self))
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.concurrency = concurrency
        self.in_process = isinstance(self.broker, InMemoryBroker)
        self.store = DeadLetterStore(database)
        self.worker = Worker(self, key_prefix=key_prefix, heartbeat_seconds=heartbeat_seconds)
        self._retries: set[asyncio.Task[None]] = set()
        self._spawned: set[asyncio.Task[Any]] = set()
        self._started = False
        self._names: dict[Callable[..., Any], str] = {}
        self._on_dead: dict[str, DeadLetterCallback] = {}
        if mailer is not None:
            self.task(name=SEND_MAIL)(self._send_mail)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        database: Database,
        metrics: Metrics,
        events: EventEmitter | None = None,
        tenants: TenantLookup | None = None,
        mailer: Mailer | None = None,
        broker: AsyncBroker | None = None,
    ) -> JobRunner:
        """A runner configured by ``job_*`` settings, on the broker of ``redis_url``."""
        return cls(
            database=database,
            metrics=metrics,
            broker=broker if broker is not None else create_broker(settings),
            events=events,
            tenants=tenants,
            mailer=mailer,
            max_attempts=settings.job_max_attempts,
            retry_base=settings.job_retry_base_seconds,
            retry_cap=settings.job_retry_max_seconds,
            concurrency=settings.job_concurrency,
            key_prefix=settings.redis_key_prefix,
        )

    def __repr__(self) -> str:
        return f"JobRunner(broker={type(self.broker).__name__}, tasks={sorted(self.broker.get_all_tasks())})"

    # ------------------------------------------------------------------ #
    # Registering and queuing
    # ------------------------------------------------------------------ #

    def task(
        self,
        name: str | None = None,
        *,
        max_attempts: int | None = None,
        on_dead_letter: DeadLetterCallback | None = None,
    ) -> Callable[[F], F]:
        """Register an ``async def`` function as a task (the function is returned unchanged).

        Args:
            name: The task's name (default: ``module:function``); ``enqueue`` uses it.
            max_attempts: Attempts before the job is dead-lettered (default:
                the runner's ``max_attempts``).
            on_dead_letter: Awaited with a :class:`DeadJob` when a job of this
                task is dead-lettered (in the job's tenant).
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
            if on_dead_letter is not None:
                self._on_dead[task_name] = on_dead_letter
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
        restored around the task in the worker. A broker that does not answer
        is tried three times within about a second before the error is raised.

        Args:
            task: A task name, or a function registered with :meth:`task`.
            *args: Positional arguments (JSON-serialisable).
            **kwargs: Keyword arguments (JSON-serialisable).

        Raises:
            NotFoundError: No task with that name is registered.
            ServiceUnavailableError: The broker could not take the job.
        """
        return await self.enqueue_attempt(task, 1, *args, **kwargs)

    async def enqueue_attempt(
        self, task: str | Callable[..., Any], attempt: int, /, *args: Any, **kwargs: Any
    ) -> str:
        """Queue a job that continues at attempt ``attempt`` (an outbox re-sending a lost job)."""
        name = task if isinstance(task, str) else self._name_of(task)
        if self.broker.find_task(name) is None:
            raise NotFoundError(f"No task named {name!r} is registered.")
        return await self._kick(name, {"attempt": max(1, attempt)}, args, kwargs)

    async def _kick(
        self, name: str, labels: dict[str, Any], args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]
    ) -> str:
        for attempt in range(1, _ENQUEUE_TRIES + 1):
            try:
                sent = await self._kicker(name, labels).kiq(*args, **kwargs)
                return str(sent.task_id)
            except Exception as exc:
                if not _transient(exc):
                    raise
                failed: Exception = exc
            logger.warning("enqueue failed (try %d): %s", attempt, type(failed).__name__)
            if attempt < _ENQUEUE_TRIES:
                await asyncio.sleep(0.2 * 2 ** (attempt - 1))
        raise ServiceUnavailableError("The job queue is unavailable.") from failed

    def _name_of(self, function: Callable[..., Any]) -> str:
        if function in self._names:
            return self._names[function]
        raise NotFoundError(f"{getattr(function, '__name__', function)!r} is not a registered task.")

    async def _send_mail(self, mail: dict[str, Any]) -> None:
        assert self.mailer is not None
        await self.mailer.send(Mail.from_dict(mail))

    def spawn(self, coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run ``coroutine`` in the background; :meth:`join` and :meth:`shutdown` wait for it."""
        task = asyncio.ensure_future(coroutine)
        self._spawned.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            self._spawned.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                logger.error("background job work failed", exc_info=finished.exception())

        task.add_done_callback(done)
        return task

    def every(self, seconds: float, function: Callable[[], Awaitable[Any]], *, name: str = "") -> None:
        """Call ``function`` every ``seconds`` in each worker (in process on the embedded default)."""
        self.worker.every(seconds, function, name=name or getattr(function, "__qualname__", "periodic"))

    # ------------------------------------------------------------------ #
    # Life cycle and the worker
    # ------------------------------------------------------------------ #

    async def startup(self) -> None:
        """Start the broker (the kit's ``startup`` calls it); in process, start the periodic work."""
        if self._started:
            return
        await self.broker.startup()
        self._started = True
        if self.in_process:
            self.worker.start_in_process()

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Wait for in-process jobs (up to ``timeout``), then stop the broker."""
        if not self._started:
            return
        self._started = False
        await self.worker.stop_in_process()
        await self.join(timeout, retries=False)
        for pending in list(self._retries):
            pending.cancel()
        if self._retries:
            await asyncio.wait(set(self._retries), timeout=1)
        await self.broker.shutdown()

    async def join(self, timeout: float = 10.0, *, retries: bool = True) -> None:
        """Wait until the jobs running in this process (and, with ``retries``, their retries) are done.

        For tests and scripts on the in-memory broker; with Redis it waits for
        this process's own background work only.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            running: set[asyncio.Task[Any]] = set(self._spawned)
            if isinstance(self.broker, InMemoryBroker):
                running |= set(self.broker._running_tasks)
            if retries:
                running |= self._retries
            left = deadline - asyncio.get_running_loop().time()
            if not running or left <= 0:
                return
            await asyncio.wait(running, timeout=left)

    async def run_worker(self, stop: asyncio.Event) -> None:
        """Consume and run jobs until ``stop`` is set (what ``tenantkit worker`` runs).

        With the in-memory broker jobs already run in the process that queues
        them, so this only waits for ``stop``.
        """
        await self.startup()
        if self.in_process:
            await stop.wait()
            return
        await self.worker.run(stop)

    async def worker_status(self) -> str:
        """``"in-process"`` (embedded default), ``"ok"`` when a worker beat recently, else ``"none"``."""
        if self.in_process:
            return "in-process"
        return "ok" if await self.worker.alive() > 0 else "none"

    def job_info(self, message: TaskiqMessage) -> JobInfo:
        """The :class:`JobInfo` of ``message``."""
        labels = message.labels
        return JobInfo(
            task_id=str(message.task_id),
            task_name=message.task_name,
            attempt=int(labels.get("attempt") or 1),
            max_attempts=int(labels.get("max_attempts") or self.max_attempts),
        )

    def retry_ceiling(self, attempt: int) -> float:
        """The longest backoff after failed ``attempt``: the retry comes at most this late."""
        return float(min(self.retry_cap, self.retry_base * 2.0 ** min(max(0, attempt - 1), 62)))

    # ------------------------------------------------------------------ #
    # Failures: retries and dead letters
    # ------------------------------------------------------------------ #

    async def call_hook(self, name: str, **kwargs: Any) -> None:
        """Call ``tenantkit_<name>``; a failing plugin is logged, never fails the job."""
        if self.events is None:
            return
        try:
            await self.events.emit(name, **kwargs)
        except Exception:
            logger.exception("plugin hook tenantkit_%s failed", name)

    async def handle_failure(self, message: TaskiqMessage, exception: BaseException) -> None:
        """Retry ``message`` after a backoff, or dead-letter it after its last attempt.

        A retry that cannot be scheduled (the broker is gone) dead-letters the
        job instead: a failed job is retried or dead-lettered, never dropped.
        """
        info = self.job_info(message)
        error = f"{type(exception).__name__}: {exception}"[:2000]
        dead = info.last_attempt or isinstance(exception, PermanentJobError)
        self.metrics.jobs.labels("failed").inc()
        logger.warning(
            "job failed",
            extra={"task": info.task_name, "attempt": info.attempt, "max_attempts": info.max_attempts},
        )
        if not dead:
            delay = backoff_delay(info.attempt, self.retry_base, self.retry_cap)
            try:
                await self.worker.retry_later(message, {**message.labels, "attempt": info.attempt + 1}, delay)
            except Exception as exc:
                logger.error("could not schedule a retry, dead-lettering: %s", type(exc).__name__)
                dead = True
        if dead:
            try:
                await self._dead_letter(message, error, info.attempt)
            except Exception:
                logger.exception("could not dead-letter job %s", info.task_name)
        await self.call_hook(
            "on_job_failure",
            task_name=message.task_name,
            tenant_id=message.labels.get("tenant_id") or None,
            labels=dict(message.labels),
            error=error,
            dead=dead,
        )

    def _retry_in_process(self, message: TaskiqMessage, labels: dict[str, Any], delay: float) -> None:
        async def later() -> None:
            await asyncio.sleep(delay)
            await self._kick(message.task_name, labels, message.args, message.kwargs)

        pending = asyncio.create_task(later())
        self._retries.add(pending)
        pending.add_done_callback(self._retries.discard)

    async def _dead_letter(self, message: TaskiqMessage, error: str, attempts: int) -> None:
        dead_letter_id = await self.store.add(message, error, attempts)
        self.metrics.jobs.labels("dead_lettered").inc()
        callback = self._on_dead.get(message.task_name)
        if callback is None:
            return
        raw_tenant = message.labels.get("tenant_id")
        tenant_id = uuid.UUID(str(raw_tenant)) if raw_tenant else None
        job = DeadJob(
            dead_letter_id=dead_letter_id,
            task_name=message.task_name,
            args=list(message.args),
            kwargs=dict(message.kwargs),
            tenant_id=tenant_id,
            error=error,
            attempts=attempts,
        )
        scope = tenant_context(TenantRef(id=tenant_id, slug="")) if tenant_id else contextlib.nullcontext()
        with scope:
            await callback(job)

    # ------------------------------------------------------------------ #
    # Dead letters: the one requeue path
    # ------------------------------------------------------------------ #

    dead_letter_json = staticmethod(dead_letter_json)

    async def dead_letters(
        self,
        *,
        tenant_id: uuid.UUID | object | None = ALL_TENANTS,
        task_name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[DeadLetter], str | None]:
        """Dead letters, newest first, and the next page's cursor (see :meth:`DeadLetterStore.list`)."""
        return await self.store.list(tenant_id=tenant_id, task_name=task_name, limit=limit, cursor=cursor)

    async def dead_letter(self, dead_letter_id: uuid.UUID) -> DeadLetter | None:
        """One dead letter by id, or ``None``."""
        return await self.store.get(dead_letter_id)

    async def requeue(self, dead_letter_id: uuid.UUID) -> str:
        """Queue a dead letter's job again with fresh attempts; returns the new job id.

        Raises:
            NotFoundError: No such dead letter.
        """
        row = await self.store.get(dead_letter_id)
        if row is None:
            raise NotFoundError("No such dead letter.")
        labels = {k: v for k, v in row.labels.items() if k not in _LABELS_NOT_COPIED}
        labels["attempt"] = 1
        labels["requeued_from"] = str(row.id)
        job_id = await self._kick(row.task_name, labels, row.args.get("args", []), row.args.get("kwargs", {}))
        await self.store.mark_requeued(row)
        return job_id
