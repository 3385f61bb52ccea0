"""``create_broker``: taskiq-redis with Redis configured, taskiq's in-memory broker otherwise.

The Redis broker is a :class:`RecoveringStreamBroker`: when Redis loses its
data (a restart without persistence, a failover, ``FLUSHALL``) its stream and
consumer group vanish, and a plain taskiq-redis worker dies on ``NOGROUP`` or
``UNBLOCKED the stream key no longer exists``. This one recreates the stream
and the group (reading from the first entry, so jobs queued into the new
stream before the group existed are not skipped) and goes on; a broken
connection is retried with a backoff instead of ending the worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from taskiq import AckableMessage, AsyncBroker, InMemoryBroker

from tenantkit.errors import MissingDependencyError
from tenantkit.settings import Settings

__all__ = ["create_broker", "is_stream_lost", "queue_name"]

logger = logging.getLogger("tenantkit.jobs")

#: The consumer group every tenantkit worker reads the job stream in.
CONSUMER_GROUP = "tenantkit"


def queue_name(settings: Settings) -> str:
    """The Redis stream jobs travel on (under the kit's key prefix)."""
    return f"{settings.redis_key_prefix}jobs"


def is_stream_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the stream or its consumer group no longer exists."""
    text = str(exc)
    return "NOGROUP" in text or "UNBLOCKED" in text or "no longer exists" in text


def _recoverable(exc: BaseException) -> bool:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ResponseError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    if isinstance(exc, ResponseError):
        return is_stream_lost(exc)
    return isinstance(exc, RedisConnectionError | RedisTimeoutError | ConnectionError | OSError)


def create_broker(settings: Settings) -> AsyncBroker:
    """The taskiq broker for ``settings``.

    With ``redis_url`` set: a :class:`RecoveringStreamBroker` on that URL
    (messages are acknowledged after they ran, so a crashed worker's jobs are
    claimed again by another). Without: an ``InMemoryBroker`` that runs each
    job in a background task of the same process (the embedded default).

    Raises:
        MissingDependencyError: Redis is configured but ``taskiq-redis`` is missing.
    """
    if settings.redis_url is None:
        return InMemoryBroker(max_stored_results=100)
    try:
        from taskiq_redis import RedisStreamBroker
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise MissingDependencyError("jobs", "the Redis job broker") from exc

    class RecoveringStreamBroker(RedisStreamBroker):
        """A ``RedisStreamBroker`` whose consumers survive the loss of their stream."""

        retry_initial = 0.2
        retry_max = 5.0

        async def listen(self) -> AsyncGenerator[AckableMessage, None]:
            delay = self.retry_initial
            while True:
                try:
                    async for message in super().listen():
                        delay = self.retry_initial
                        yield message
                except Exception as exc:
                    if not _recoverable(exc):
                        raise
                    logger.warning(
                        "job stream unavailable, recreating it: %s",
                        type(exc).__name__,
                        extra={"stream": self.queue_name, "lost": is_stream_lost(exc)},
                    )
                    await asyncio.sleep(delay)
                    delay = min(self.retry_max, delay * 2)
                    try:
                        await self._declare_consumer_group()
                    except Exception as again:  # still down: the next round retries
                        logger.debug("consumer group not declared yet: %s", type(again).__name__)

        def _ack_generator(self, id: str, queue_name: str) -> Callable[[], Awaitable[None]]:
            ack = super()._ack_generator(id, queue_name)

            async def safe_ack() -> None:
                try:
                    await ack()
                except Exception as exc:  # the message ran; its stream entry is gone with the data
                    if not _recoverable(exc):
                        raise
                    logger.warning("job acknowledgement lost: %s", type(exc).__name__)

            return safe_ack

    options: dict[str, Any] = {
        "queue_name": queue_name(settings),
        "consumer_group_name": CONSUMER_GROUP,
        "consumer_id": "0",  # a recreated group reads the whole new stream
        "maxlen": 100_000,
        "xread_block": 1000,
        "unacknowledged_lock_timeout": 30,
    }
    return RecoveringStreamBroker(url=settings.redis_url, **options)
