"""Webhook delivery as a job: the ``tenantkit.webhooks.deliver`` task, its dead letters, the outbox relay.

``webhook_deliveries`` is a transactional outbox and the delivery history:
:meth:`~tenantkit.webhooks.WebhookService.emit` writes a ``pending`` row in
the caller's transaction and, once that commits, queues one
``tenantkit.webhooks.deliver`` job per row on the :class:`~tenantkit.jobs.JobRunner`.

* One job attempt is one HTTP attempt (:class:`~tenantkit.webhooks.delivery.WebhookSender`),
  logged in ``webhook_attempts``. A failed attempt raises, and the job system
  retries it with its backoff and jitter; after ``webhook_max_attempts`` the
  job goes to the jobs' dead-letter store and the delivery becomes ``dead``
  (``tenantkit_on_webhook_dead_lettered``). Requeuing the dead letter
  (``POST /jobs/dead-letters/{id}/requeue``, ``tenantkit jobs dead-letters
  requeue``, or ``POST /webhooks/deliveries/{id}/requeue`` which goes through
  the same :meth:`~tenantkit.jobs.JobRunner.requeue`) starts it again at attempt 1.
* Nothing is lost between the database and the queue: each pending row carries
  ``next_attempt_at``, the latest time its job should have reported back (the
  retry's longest backoff plus ``relay_after``). The relay, a periodic job of
  every worker, re-queues pending rows past that time: a job that never
  reached Redis (enqueue failed, the process died after the commit) or that
  Redis lost with its data. Delivery is at least once; receivers deduplicate
  on ``webhook-id``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import and_, select, tuple_, update

from tenantkit.context import TenantRef, tenant_context
from tenantkit.db.base import utcnow
from tenantkit.db.engine import Database
from tenantkit.db.scoping import scoped_get, unscoped
from tenantkit.jobs import DeadJob, JobRunner, PermanentJobError, current_job
from tenantkit.jobs.runner import EventEmitter
from tenantkit.webhooks.delivery import AttemptResult, WebhookSender
from tenantkit.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = ["DELIVER", "DeliveryJobs", "WebhookDeliveryError"]

logger = logging.getLogger("tenantkit.webhooks")

#: The job that makes one delivery attempt.
DELIVER = "tenantkit.webhooks.deliver"


class WebhookDeliveryError(Exception):
    """A delivery attempt failed (its message is the attempt's error); the job system retries it."""


class DeliveryJobs:
    """Registers and runs the delivery task and the relay on a job runner.

    Args:
        database: The database holding the ``webhook_*`` tables.
        jobs: The job runner deliveries run on.
        sender: Makes the HTTP attempts.
        events: Calls ``tenantkit_on_webhook_delivered`` / ``tenantkit_on_webhook_dead_lettered``.
        max_attempts: Attempts before a delivery is dead.
        relay_after: Seconds of slack after a job's latest expected report
            before the relay presumes it lost and queues it again.
        relay_interval: Seconds between two relay rounds in a worker.
    """

    def __init__(
        self,
        database: Database,
        jobs: JobRunner,
        sender: WebhookSender,
        *,
        events: EventEmitter | None = None,
        max_attempts: int = 5,
        relay_after: float = 60.0,
        relay_interval: float = 5.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.database = database
        self.jobs = jobs
        self.sender = sender
        self.events = events
        self.max_attempts = max_attempts
        self.relay_after = relay_after
        jobs.task(name=DELIVER, max_attempts=max_attempts, on_dead_letter=self.dead_lettered)(self.deliver)
        jobs.every(relay_interval, self.relay, name="webhooks.relay")

    def lease(self, attempt: int) -> timedelta:
        """How long after attempt ``attempt`` is queued its job may stay silent before the relay steps in."""
        return timedelta(seconds=self.jobs.retry_ceiling(attempt) + self.relay_after)

    async def enqueue(self, delivery_ids: list[uuid.UUID]) -> None:
        """Queue a delivery job per id in the current tenant; failures are left to the relay."""
        for delivery_id in delivery_ids:
            try:
                await self.jobs.enqueue(DELIVER, str(delivery_id))
            except Exception as exc:
                logger.warning(
                    "webhook delivery not queued, the relay will: %s",
                    type(exc).__name__,
                    extra={"delivery_id": str(delivery_id)},
                )

    # ------------------------------------------------------------------ #
    # The task
    # ------------------------------------------------------------------ #

    async def deliver(self, delivery_id: str) -> None:
        """Make one attempt of a delivery of the job's tenant (the ``tenantkit.webhooks.deliver`` task).

        Raises:
            WebhookDeliveryError: the attempt failed (the job is retried).
            PermanentJobError: the endpoint is inactive (dead-lettered at once).
        """
        job = current_job()
        attempt = job.attempt if job is not None else 1
        target = uuid.UUID(delivery_id)
        async with self.database.session() as session:
            found = (
                await session.execute(
                    select(WebhookDelivery, WebhookEndpoint)
                    .join(
                        WebhookEndpoint,
                        and_(
                            WebhookEndpoint.tenant_id == WebhookDelivery.tenant_id,
                            WebhookEndpoint.id == WebhookDelivery.endpoint_id,
                        ),
                    )
                    .where(WebhookDelivery.id == target)
                )
            ).first()
        if found is None:  # deleted with its endpoint
            return
        delivery, endpoint = found[0], found[1]
        if delivery.status == "delivered":  # a duplicate job (at least once)
            return
        if endpoint.active:
            result = await self.sender.attempt(
                endpoint.url,
                endpoint.secret,
                delivery.event_id,
                delivery.event_type,
                delivery.payload,
                delivery.created_at,
            )
        else:
            result = AttemptResult(None, "the endpoint is inactive", 0)
        if not await self._record(target, attempt, result):
            return
        log = {
            "delivery_id": delivery_id,
            "endpoint_id": str(endpoint.id),
            "event_type": delivery.event_type,
            "attempt": attempt,
            "status_code": result.status_code,
            "duration_ms": result.duration_ms,
        }
        if result.ok:
            logger.info("webhook delivered", extra=log)
            await self._emit(
                "on_webhook_delivered",
                endpoint_id=str(endpoint.id),
                event_id=delivery.event_id,
                status=result.status_code or 0,
                attempt=attempt,
            )
            return
        logger.info("webhook attempt failed", extra={**log, "error": result.error})
        if not endpoint.active:
            raise PermanentJobError(result.error)
        raise WebhookDeliveryError(result.error)

    async def _record(self, delivery_id: uuid.UUID, attempt: int, result: AttemptResult) -> bool:
        now = utcnow()
        async with self.database.session() as session, session.begin():
            delivery = await scoped_get(session, WebhookDelivery, delivery_id)
            if delivery is None:  # its endpoint was deleted meanwhile
                return False
            session.add(
                WebhookAttempt(
                    delivery_id=delivery_id,
                    attempt=attempt,
                    status_code=result.status_code,
                    error=result.error,
                    duration_ms=result.duration_ms,
                    created_at=now,
                )
            )
            delivery.attempts = attempt
            delivery.last_status_code = result.status_code
            delivery.last_error = result.error
            if result.ok:
                delivery.status = "delivered"
                delivery.delivered_at = now
            else:
                delivery.status = "pending"  # a requeued dead delivery is alive again
                delivery.next_attempt_at = now + self.lease(attempt)
        return True

    async def dead_lettered(self, job: DeadJob) -> None:
        """The job of a delivery was dead-lettered: the delivery is ``dead``; tell the plugins."""
        delivery_id = uuid.UUID(str(job.args[0]))
        async with self.database.session() as session, session.begin():
            delivery = await scoped_get(session, WebhookDelivery, delivery_id)
            if delivery is None or delivery.status == "delivered":
                return
            delivery.status = "dead"
            endpoint_id, event_id, error = delivery.endpoint_id, delivery.event_id, delivery.last_error
        logger.warning(
            "webhook dead-lettered",
            extra={"delivery_id": str(delivery_id), "attempts": job.attempts, "error": error},
        )
        await self._emit(
            "on_webhook_dead_lettered",
            endpoint_id=str(endpoint_id),
            event_id=event_id,
            error=error or job.error,
            attempts=job.attempts,
        )

    async def _emit(self, name: str, **kwargs: object) -> None:
        if self.events is None:
            return
        try:
            await self.events.emit(name, **kwargs)
        except Exception:
            logger.exception("plugin hook tenantkit_%s failed", name)

    # ------------------------------------------------------------------ #
    # The relay
    # ------------------------------------------------------------------ #

    async def relay(self, limit: int = 100) -> int:
        """Queue again the pending deliveries whose job is overdue, across tenants; returns how many.

        Claiming pushes ``next_attempt_at`` out by a lease in one ``UPDATE ...
        WHERE (tenant_id, id) IN (SELECT ... FOR UPDATE SKIP LOCKED)``, so
        several workers never queue one delivery twice in a round.
        """
        now = utcnow()
        due = and_(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
        candidates = (
            select(WebhookDelivery.tenant_id, WebhookDelivery.id)
            .where(due)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)  # not rendered on SQLite, whose writer lock serialises this
        )
        claim = (
            update(WebhookDelivery)
            .where(tuple_(WebhookDelivery.tenant_id, WebhookDelivery.id).in_(candidates), due)
            .values(next_attempt_at=now + timedelta(seconds=self.relay_after))
            .returning(WebhookDelivery.tenant_id, WebhookDelivery.id, WebhookDelivery.attempts)
            .execution_options(synchronize_session=False)
        )
        with unscoped("webhook outbox relay", system=True):
            async with self.database.session() as session, session.begin():
                rows = (await session.execute(claim)).all()
        claimed = [(row.tenant_id, row.id, int(row.attempts)) for row in rows]
        for tenant_id, delivery_id, attempts in claimed:
            logger.warning(
                "webhook delivery job overdue, queued again", extra={"delivery_id": str(delivery_id)}
            )
            with tenant_context(TenantRef(id=tenant_id, slug="")):
                try:
                    await self.jobs.enqueue_attempt(DELIVER, attempts + 1, str(delivery_id))
                except Exception as exc:
                    logger.warning("webhook relay could not queue: %s", type(exc).__name__)
        return len(claimed)
