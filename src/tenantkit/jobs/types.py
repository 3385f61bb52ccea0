"""The small types jobs and their callers share: collaborator protocols, dead jobs, the backoff."""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tenantkit.context import TenantRef

__all__ = [
    "DeadJob",
    "DeadLetterCallback",
    "EventEmitter",
    "PermanentJobError",
    "TenantLookup",
    "backoff_delay",
]


class TenantLookup(Protocol):
    """Finds a tenant by id (``tenantkit.tenancy.TenantDirectory``)."""

    async def get(self, tenant_id: uuid.UUID) -> TenantRef | None:
        """The tenant, or ``None``."""


class EventEmitter(Protocol):
    """Calls plugin event hooks (``tenantkit.events.Events``)."""

    async def emit(self, name: str, /, **kwargs: Any) -> Any:
        """Call ``tenantkit_<name>``."""


class PermanentJobError(Exception):
    """Raised by a task when retrying cannot help: the job is dead-lettered at once."""


@dataclass(frozen=True, slots=True)
class DeadJob:
    """A job that was just dead-lettered (what an ``on_dead_letter`` callback receives).

    Attributes:
        dead_letter_id: Its row in the dead-letter store.
        task_name: The task.
        args: Positional arguments it was queued with.
        kwargs: Keyword arguments it was queued with.
        tenant_id: Its tenant, or ``None``.
        error: The last error, ``Type: message``.
        attempts: How many times it ran.
    """

    dead_letter_id: uuid.UUID
    task_name: str
    args: list[Any]
    kwargs: dict[str, Any]
    tenant_id: uuid.UUID | None
    error: str
    attempts: int


DeadLetterCallback = Callable[[DeadJob], Awaitable[None]]


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait before retrying after failed ``attempt`` (1-based).

    Exponential (``base * 2**(attempt-1)``, at most ``cap``) with "equal
    jitter": half of it fixed, half random, so retries of many jobs failing
    together spread out instead of hammering the service in step.
    """
    ceiling = float(min(cap, base * 2.0 ** min(max(0, attempt - 1), 62)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - not for security
