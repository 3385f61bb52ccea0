"""``create_broker``: taskiq-redis with Redis configured, taskiq's in-memory broker otherwise."""

from __future__ import annotations

from taskiq import AsyncBroker, InMemoryBroker

from tenantkit.errors import MissingDependencyError
from tenantkit.settings import Settings

__all__ = ["create_broker", "queue_name"]


def queue_name(settings: Settings) -> str:
    """The Redis stream jobs travel on (under the kit's key prefix)."""
    return f"{settings.redis_key_prefix}jobs"


def create_broker(settings: Settings) -> AsyncBroker:
    """The taskiq broker for ``settings``.

    With ``redis_url`` set: a ``RedisStreamBroker`` (messages are acknowledged
    after they ran, so a crashed worker's jobs are claimed again by another).
    Without: an ``InMemoryBroker`` that runs each job in a background task of
    the same process (the embedded default).

    Raises:
        MissingDependencyError: Redis is configured but ``taskiq-redis`` is missing.
    """
    if settings.redis_url is None:
        return InMemoryBroker(max_stored_results=100)
    try:
        from taskiq_redis import RedisStreamBroker
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise MissingDependencyError("jobs", "the Redis job broker") from exc
    return RedisStreamBroker(
        url=settings.redis_url,
        queue_name=queue_name(settings),
        consumer_group_name="tenantkit",
        consumer_id="0",
        maxlen=100_000,
        xread_block=1000,
    )
