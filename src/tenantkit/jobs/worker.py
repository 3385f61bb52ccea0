"""The job worker's loops: consuming, delayed retries, heartbeats and periodic work.

``Worker.run`` is what ``tenantkit worker`` runs with Redis: taskiq's receiver
on the (recovering) stream broker, a loop that promotes due retries from a
sorted set, a heartbeat that tells ``GET /health`` a worker is consuming, and
the periodic callables features registered (the webhook outbox relay). Every
loop survives Redis losing its data or its connection: errors are logged and
the next round tries again.

All Redis access goes through the broker's connection pool: the settings'
``redis_url`` (or ``redis_cluster_nodes``) describes the one connection the
job system uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from taskiq import TaskiqMessage

from tenantkit.jobs.deadletters import json_safe

if TYPE_CHECKING:
    from tenantkit.jobs.runner import JobRunner

__all__ = ["Worker"]

logger = logging.getLogger("tenantkit.jobs")

Periodic = tuple[float, Callable[[], Awaitable[Any]], str]


class Worker:
    """The loops around a :class:`~tenantkit.jobs.JobRunner`'s broker.

    Args:
        runner: The runner whose broker and tasks are used.
        key_prefix: Prefix of the Redis keys.
        heartbeat_seconds: Interval of the heartbeat; a worker silent for three
            intervals no longer counts as alive.
    """

    def __init__(self, runner: JobRunner, *, key_prefix: str, heartbeat_seconds: float) -> None:
        self.runner = runner
        self.delayed_key = f"{key_prefix}jobs:delayed"
        self.workers_key = f"{key_prefix}jobs:workers"
        self.heartbeat_seconds = heartbeat_seconds
        self.periodic: list[Periodic] = []
        self._stop = asyncio.Event()
        self._loops: set[asyncio.Task[None]] = set()
        self.name = f"worker-{uuid.uuid4().hex[:12]}"

    def redis(self) -> Any:
        """A client on the broker's connection pool (``None`` for the in-memory broker).

        On a Redis Cluster, the cluster broker's own client (every key here is one slot).
        """
        pool = getattr(self.runner.broker, "connection_pool", None)
        if pool is None:
            return getattr(self.runner.broker, "redis", None)
        from redis.asyncio import Redis

        return Redis(connection_pool=pool)

    def every(self, seconds: float, function: Callable[[], Awaitable[Any]], *, name: str) -> None:
        """Add a periodic callable (run by :meth:`run`, or in process by :meth:`start_in_process`)."""
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        self.periodic.append((seconds, function, name))

    # ------------------------------------------------------------------ #
    # In process (the embedded default)
    # ------------------------------------------------------------------ #

    def start_in_process(self) -> None:
        """Start the periodic callables in this process."""
        self._stop = asyncio.Event()
        for seconds, function, name in self.periodic:
            loop = asyncio.create_task(self._repeat(self._stop, seconds, function, name))
            self._loops.add(loop)
            loop.add_done_callback(self._loops.discard)

    async def stop_in_process(self) -> None:
        """Stop what :meth:`start_in_process` started."""
        self._stop.set()
        if self._loops:
            await asyncio.wait(set(self._loops), timeout=10)

    # ------------------------------------------------------------------ #
    # The Redis worker
    # ------------------------------------------------------------------ #

    async def run(self, stop: asyncio.Event) -> None:
        """Consume jobs until ``stop`` is set, with the promoter, heartbeat and periodic loops."""
        from taskiq.receiver import Receiver

        broker = self.runner.broker
        broker.is_worker_process = True
        loops = [
            self._repeat(stop, min(0.25, max(self.runner.retry_base, 0.05)), self.promote_due, "promote"),
            self._repeat(stop, self.heartbeat_seconds, self.beat, "heartbeat"),
            *(self._repeat(stop, s, f, n) for s, f, n in self.periodic),
        ]
        with ThreadPoolExecutor(max_workers=2) as executor:
            receiver = Receiver(
                broker,
                executor=executor,
                max_async_tasks=self.runner.concurrency,
                run_startup=False,
                wait_tasks_timeout=30,
            )
            tasks = [asyncio.create_task(loop) for loop in loops]
            try:
                await receiver.listen(stop)
            finally:
                stop.set()
                await asyncio.wait(tasks, timeout=10)
                for task in tasks:
                    task.cancel()
                with contextlib.suppress(Exception):
                    await self.redis().zrem(self.workers_key, self.name)

    @staticmethod
    async def _repeat(
        stop: asyncio.Event, seconds: float, function: Callable[[], Awaitable[Any]], name: str
    ) -> None:
        while not stop.is_set():
            try:
                await function()
            except Exception as exc:  # Redis or the database away: the next round tries again
                logger.warning("job loop %s failed: %s", name, type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)

    async def beat(self) -> None:
        """Say this worker is alive (a sorted set of worker names by last beat)."""
        redis = self.redis()
        now = time.time()
        ttl = max(1, round(self.heartbeat_seconds * 3))
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.workers_key, {self.name: now})
            pipe.zremrangebyscore(self.workers_key, "-inf", now - ttl)
            pipe.expire(self.workers_key, ttl)
            await pipe.execute()

    async def alive(self) -> int:
        """How many workers beat within the last three heartbeat intervals."""
        redis = self.redis()
        if redis is None:
            return 0
        since = time.time() - self.heartbeat_seconds * 3
        count: int = await redis.zcount(self.workers_key, since, "+inf")
        return count

    # ------------------------------------------------------------------ #
    # Delayed retries
    # ------------------------------------------------------------------ #

    async def retry_later(self, message: TaskiqMessage, labels: dict[str, Any], delay: float) -> None:
        """Queue ``message`` again with ``labels`` after ``delay`` seconds."""
        redis = self.redis()
        if redis is None:
            self.runner._retry_in_process(message, labels, delay)
            return
        job = {
            "id": uuid.uuid4().hex,
            "task_name": message.task_name,
            "args": message.args,
            "kwargs": message.kwargs,
            "labels": json_safe(labels),
        }
        await redis.zadd(self.delayed_key, {json.dumps(job): time.time() + delay})

    async def promote_due(self) -> int:
        """Queue delayed retries whose time has come (Redis only); returns how many."""
        redis = self.redis()
        if redis is None:
            return 0
        due = await redis.zrangebyscore(self.delayed_key, "-inf", time.time(), start=0, num=100)
        moved = 0
        for member in due:
            if await redis.zrem(self.delayed_key, member) != 1:
                continue  # another worker took it
            job = json.loads(member)
            try:
                await self.runner._kick(job["task_name"], job["labels"], job["args"], job["kwargs"])
            except Exception:
                await redis.zadd(self.delayed_key, {member: time.time() + 1})  # put it back
                raise
            moved += 1
        return moved
