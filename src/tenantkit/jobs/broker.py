"""``create_broker``: taskiq-redis with Redis configured, taskiq's in-memory broker otherwise.

The Redis broker is a :class:`RecoveringStreamBroker` (or, on a Redis
Cluster, a :class:`RecoveringStreamClusterBroker`): when Redis loses its
data (a restart without persistence, a failover, ``FLUSHALL``) its stream and
consumer group vanish, and a plain taskiq-redis worker dies on ``NOGROUP`` or
``UNBLOCKED the stream key no longer exists``. This one recreates the stream
and the group (reading from the first entry, so jobs queued into the new
stream before the group existed are not skipped) and goes on; a broken
connection is retried with a backoff instead of ending the worker.
"""

from __future__ import annotations

import logging
from typing import Any

from taskiq import AsyncBroker, InMemoryBroker

from tenantkit.errors import MissingDependencyError
from tenantkit.settings import Settings

__all__ = ["create_broker", "is_stream_lost", "queue_name", "recoverable"]

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


def recoverable(exc: BaseException) -> bool:
    """A broker error worth retrying: the connection, a lost stream, a cluster failing over."""
    from redis.exceptions import ClusterError, RedisClusterException, ResponseError, TryAgainError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    if isinstance(exc, ClusterError | RedisClusterException | TryAgainError):
        return True
    if isinstance(exc, ResponseError):
        return is_stream_lost(exc)
    return isinstance(exc, RedisConnectionError | RedisTimeoutError | ConnectionError | OSError)


def create_broker(settings: Settings) -> AsyncBroker:
    """The taskiq broker for ``settings``.

    With ``redis_cluster_nodes`` set: a :class:`RecoveringStreamClusterBroker`
    on that Redis Cluster; else with ``redis_url`` set: a
    :class:`RecoveringStreamBroker` on that URL (messages are acknowledged
    after they ran, so a crashed worker's jobs are claimed again by another).
    Without either: an ``InMemoryBroker`` that runs each job in a background
    task of the same process (the embedded default).

    Raises:
        MissingDependencyError: Redis is configured but ``taskiq-redis`` is missing.
    """
    if settings.redis_url is None and not settings.redis_cluster_nodes:
        return InMemoryBroker(max_stored_results=100)
    try:
        import taskiq_redis  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise MissingDependencyError("jobs", "the Redis job broker") from exc
    from tenantkit.jobs.redis_brokers import RecoveringStreamBroker, RecoveringStreamClusterBroker

    options: dict[str, Any] = {
        "queue_name": queue_name(settings),
        "consumer_group_name": CONSUMER_GROUP,
        "consumer_id": "0",  # a recreated group reads the whole new stream
        "maxlen": 100_000,
        "xread_block": 1000,
    }
    if settings.redis_cluster_nodes:
        return RecoveringStreamClusterBroker(settings.redis_cluster_nodes, **options)
    assert settings.redis_url is not None
    return RecoveringStreamBroker(url=settings.redis_url, unacknowledged_lock_timeout=30, **options)
