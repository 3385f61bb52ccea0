"""Background jobs on taskiq: tenant-aware tasks, retries with backoff, dead letters.

``kit.jobs`` is a :class:`JobRunner`. Register tasks with ``@kit.jobs.task()``
(or from a plugin's ``tenantkit_register_tasks`` hook), queue them with
``await kit.jobs.enqueue(...)``; ``tenantkit worker`` runs them when Redis is
configured, and on the embedded default they run in the same process.
"""

from __future__ import annotations

from tenantkit.jobs.broker import create_broker
from tenantkit.jobs.middleware import JobContextMiddleware
from tenantkit.jobs.models import DeadLetter
from tenantkit.jobs.routes import job_routes
from tenantkit.jobs.runner import ALL_TENANTS, SEND_MAIL, JobRunner, backoff_delay

__all__ = [
    "ALL_TENANTS",
    "SEND_MAIL",
    "DeadLetter",
    "JobContextMiddleware",
    "JobRunner",
    "backoff_delay",
    "create_broker",
    "job_routes",
]
