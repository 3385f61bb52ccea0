"""The taskiq middleware that carries tenant and request id from a request into its jobs.

On send it copies the current tenant id and request id into the job's labels;
in the worker it restores them with :func:`tenantkit.context.tenant_context`
(so ``TenantScoped`` queries work inside tasks), calls the ``tenantkit_on_job_*``
hooks, counts outcomes, and on failure hands the job back to the runner to
retry with backoff or dead-letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult
from taskiq.exceptions import NoResultError

from tenantkit.context import (
    TenantRef,
    current_request_id,
    current_tenant_id,
    request_id_context,
    tenant_context,
)
from tenantkit.jobs.context import job_context

if TYPE_CHECKING:
    from tenantkit.jobs.runner import JobRunner

__all__ = ["JobContextMiddleware"]

logger = logging.getLogger("tenantkit.jobs")


class JobContextMiddleware(TaskiqMiddleware):
    """Labels out, context in; hooks, metrics, retries and dead letters around each job."""

    def __init__(self, runner: JobRunner) -> None:
        super().__init__()
        self.runner = runner
        self._scopes: dict[asyncio.Task[Any] | None, contextlib.ExitStack] = {}

    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        labels = message.labels
        tenant_id = current_tenant_id()
        request_id = current_request_id()
        if tenant_id is not None and not labels.get("tenant_id"):
            labels["tenant_id"] = str(tenant_id)
        if request_id and not labels.get("request_id"):
            labels["request_id"] = request_id
        labels.setdefault("attempt", 1)
        return message

    def post_send(self, message: TaskiqMessage) -> None:
        self.runner.metrics.jobs.labels("queued").inc()

    async def _tenant(self, raw: Any) -> TenantRef | None:
        if not raw:
            return None
        tenant_id = uuid.UUID(str(raw))
        try:
            found = await self.runner.tenants.get(tenant_id) if self.runner.tenants else None
        except Exception as exc:  # the job still runs in its tenant, without slug or name
            logger.warning("tenant lookup failed for a job: %s", type(exc).__name__)
            found = None
        return found if found is not None else TenantRef(id=tenant_id, slug="")

    async def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        stack = contextlib.ExitStack()
        tenant = await self._tenant(message.labels.get("tenant_id"))
        stack.enter_context(tenant_context(tenant))
        stack.enter_context(request_id_context(message.labels.get("request_id") or None))
        stack.enter_context(job_context(self.runner.job_info(message)))
        self._scopes[asyncio.current_task()] = stack
        await self.runner.call_hook(
            "on_job_start",
            task_name=message.task_name,
            tenant_id=str(tenant.id) if tenant else None,
            labels=dict(message.labels),
        )
        return message

    async def on_error(
        self, message: TaskiqMessage, result: TaskiqResult[Any], exception: BaseException
    ) -> None:
        if isinstance(exception, NoResultError):
            return
        await self.runner.handle_failure(message, exception)

    async def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        try:
            if not result.is_err or isinstance(result.error, NoResultError):
                self.runner.metrics.jobs.labels("succeeded").inc()
                await self.runner.call_hook(
                    "on_job_success",
                    task_name=message.task_name,
                    tenant_id=message.labels.get("tenant_id") or None,
                    labels=dict(message.labels),
                )
        finally:
            stack = self._scopes.pop(asyncio.current_task(), None)
            if stack is not None:
                stack.close()
