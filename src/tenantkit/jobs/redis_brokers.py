"""The taskiq-redis stream brokers, made to survive Redis losing data or failing over.

Imported only when Redis is configured (needs ``tenantkit[jobs]``). Both
brokers read one stream (a single key, so one Redis Cluster slot) in the
``tenantkit`` consumer group and acknowledge a message after it ran.
:class:`RecoveringStreamClusterBroker` is taskiq-redis's
``RedisStreamClusterBroker`` plus what that one lacks next to the
single-node broker: claiming messages left unacknowledged by a crashed worker
(``XAUTOCLAIM``), several startup nodes, and the reconnection loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from taskiq import AckableMessage
from taskiq_redis import RedisStreamBroker, RedisStreamClusterBroker

from tenantkit.jobs.broker import is_stream_lost, recoverable
from tenantkit.stores.redis import cluster_client

__all__ = ["RecoveringStreamBroker", "RecoveringStreamClusterBroker"]

logger = logging.getLogger("tenantkit.jobs")


class _Recovering:
    """Keeps ``listen`` going through lost streams and broken connections; acks never raise for them."""

    retry_initial = 0.2
    retry_max = 5.0
    queue_name: str

    if TYPE_CHECKING:  # provided by the taskiq-redis broker this is mixed into

        async def _declare_consumer_group(self) -> None: ...

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        delay = self.retry_initial
        while True:
            try:
                async for message in super().listen():  # type: ignore[misc]
                    delay = self.retry_initial
                    yield message
            except Exception as exc:
                if not recoverable(exc):
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
        ack: Callable[[], Awaitable[None]] = super()._ack_generator(id, queue_name)  # type: ignore[misc]

        async def safe_ack() -> None:
            try:
                await ack()
            except Exception as exc:  # the message ran; its stream entry is gone with the data
                if not recoverable(exc):
                    raise
                logger.warning("job acknowledgement lost: %s", type(exc).__name__)

        return safe_ack


class RecoveringStreamBroker(_Recovering, RedisStreamBroker):
    """A ``RedisStreamBroker`` whose consumers survive the loss of their stream."""


class _ClaimingClusterBroker(RedisStreamClusterBroker):
    """``RedisStreamClusterBroker`` on several startup nodes that also claims abandoned messages."""

    #: A message unacknowledged this long (ms) belonged to a dead worker: take it over.
    claim_idle_ms = 600_000
    batch = 100

    def __init__(self, nodes: list[str], **options: Any) -> None:
        super().__init__(f"redis://{nodes[0]}", **options)  # builds a client we replace (never connected)
        self.redis = cluster_client(nodes)

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        group, consumer = self.consumer_group_name, self.consumer_name
        while True:
            fetched: Any = await self.redis.xreadgroup(
                group, consumer, {self.queue_name: ">"}, block=self.block, count=self.batch, noack=False
            )
            for stream, entries in fetched or []:
                for entry_id, fields in entries:
                    yield AckableMessage(data=fields[b"data"], ack=self._ack_generator(entry_id, stream))
            claimed: Any = await self.redis.xautoclaim(
                self.queue_name, group, consumer, min_idle_time=self.claim_idle_ms, count=self.batch
            )
            for entry_id, fields in claimed[1] if claimed else []:
                if fields:
                    yield AckableMessage(
                        data=fields[b"data"], ack=self._ack_generator(entry_id, self.queue_name)
                    )


class RecoveringStreamClusterBroker(_Recovering, _ClaimingClusterBroker):
    """The job broker on a Redis Cluster (``TENANTKIT_REDIS_CLUSTER_NODES``)."""
