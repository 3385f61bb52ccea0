"""Background jobs on taskiq: tenant-aware tasks, retries with backoff, dead letters.

``kit.jobs`` is a :class:`JobRunner`. Register tasks with ``@kit.jobs.task()``
(or from a plugin's ``tenantkit_register_tasks`` hook), queue them with
``await kit.jobs.enqueue(...)``; ``tenantkit worker`` runs them when Redis is
configured, and on the embedded default they run in the same process. It is
the package's one job system: webhook deliveries are jobs on the same retry
model, dead-letter store and requeue path.
"""

from __future__ import annotations

from tenantkit.jobs.broker import create_broker
from tenantkit.jobs.context import JobInfo, current_job
from tenantkit.jobs.deadletters import ALL_TENANTS, DeadLetterStore
from tenantkit.jobs.middleware import JobContextMiddleware
from tenantkit.jobs.models import DeadLetter
from tenantkit.jobs.routes import DeadLetterRoutes, job_routes
from tenantkit.jobs.runner import (
    SEND_MAIL,
    DeadJob,
    JobRunner,
    PermanentJobError,
    backoff_delay,
)

__all__ = [
    "ALL_TENANTS",
    "SEND_MAIL",
    "DeadJob",
    "DeadLetter",
    "DeadLetterRoutes",
    "DeadLetterStore",
    "JobContextMiddleware",
    "JobInfo",
    "JobRunner",
    "PermanentJobError",
    "backoff_delay",
    "create_broker",
    "current_job",
    "job_routes",
]
