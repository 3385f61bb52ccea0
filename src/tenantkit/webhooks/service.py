"""``WebhookService`` (``kit.webhooks``): a tenant's endpoints, its events and their delivery history.

Endpoint and delivery methods act in the current tenant
(:func:`~tenantkit.context.tenant_context`). :meth:`WebhookService.emit`
writes one ``pending`` row per subscribed endpoint into ``webhook_deliveries``
(optionally inside the caller's own transaction, so an event exists exactly
when the change that caused it was committed) and, after the commit, queues
its delivery job; delivery itself is a job on the kit's one job system
(:mod:`tenantkit.webhooks.tasks`).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from tenantkit.context import current_tenant_id
from tenantkit.db.base import new_id, utcnow
from tenantkit.db.engine import Database
from tenantkit.db.scoping import scoped_get
from tenantkit.errors import ConflictError, NotFoundError, TenantScopeError, ValidationError
from tenantkit.jobs import JobRunner
from tenantkit.jobs.runner import EventEmitter
from tenantkit.security.ssrf import UnsafeURLError, validate_url
from tenantkit.settings import Settings
from tenantkit.webhooks.delivery import WebhookSender, json_default
from tenantkit.webhooks.models import DELIVERY_STATUSES, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tenantkit.webhooks.signing import generate_secret
from tenantkit.webhooks.tasks import DELIVER, DeliveryJobs

__all__ = ["MAX_EVENTS", "MAX_PAYLOAD_BYTES", "WebhookService", "matches_event"]

logger = logging.getLogger("tenantkit.webhooks")

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_EVENTS = 100
MAX_DESCRIPTION = 500
MAX_EVENT_TYPE = 200
_PENDING_KEY = "tenantkit.webhooks.pending"

_EVENT_TYPE = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$")
_SUBSCRIPTION = re.compile(r"^(?:\*|[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*(?:\.\*)?)$")


def matches_event(subscriptions: Iterable[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to ``subscriptions`` receives ``event_type``.

    A subscription is an exact type (``"order.created"``), a prefix
    (``"order.*"`` matches ``"order.created"`` and ``"order.line.added"``) or
    ``"*"`` (everything).
    """
    for pattern in subscriptions:
        if pattern in ("*", event_type):
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def _error(field: str | int, msg: str, *more: str | int) -> dict[str, Any]:
    return {"loc": ["body", field, *more], "msg": msg, "type": "value_error"}


def _require_tenant() -> uuid.UUID:
    tenant_id = current_tenant_id()
    if tenant_id is None:
        raise TenantScopeError("webhooks need a tenant in context; enter one with tenant_context()")
    return tenant_id


class WebhookService:
    """Webhook endpoints, events and deliveries of the current tenant.

    Args:
        database: The database holding the ``webhook_*`` tables.
        jobs: The job runner deliveries run on (the task and the outbox relay
            are registered on it).
        events: Calls ``tenantkit_on_webhook_delivered`` and ``tenantkit_on_webhook_dead_lettered``.
        allow_hosts: Hosts exempt from the private-address refusal
            (``Settings.webhook_allow_hosts``), at save and at send time.
        timeout: Seconds one attempt may take (``Settings.webhook_timeout``).
        max_attempts: Attempts before a delivery is dead (``Settings.webhook_max_attempts``).
        relay_after: Seconds a delivery job may stay silent past its latest
            expected report before the relay queues it again.
        relay_interval: Seconds between two relay rounds.
    """

    def __init__(
        self,
        database: Database,
        jobs: JobRunner,
        *,
        events: EventEmitter | None = None,
        allow_hosts: Iterable[str] = (),
        timeout: float = 10.0,
        max_attempts: int = 5,
        relay_after: float = 60.0,
        relay_interval: float = 5.0,
    ) -> None:
        self.database = database
        self.jobs = jobs
        self.sender = WebhookSender(allow_hosts=allow_hosts, timeout=timeout)
        self.allow_hosts = self.sender.allow_hosts
        self.delivery = DeliveryJobs(
            database,
            jobs,
            self.sender,
            events=events,
            max_attempts=max_attempts,
            relay_after=relay_after,
            relay_interval=relay_interval,
        )

    @classmethod
    def from_settings(
        cls, database: Database, settings: Settings, *, jobs: JobRunner, events: EventEmitter | None = None
    ) -> WebhookService:
        """A service configured by the ``webhook_allow_hosts``, ``webhook_timeout`` and
        ``webhook_max_attempts`` settings."""
        return cls(
            database,
            jobs,
            events=events,
            allow_hosts=settings.webhook_allow_hosts,
            timeout=settings.webhook_timeout,
            max_attempts=settings.webhook_max_attempts,
        )

    def __repr__(self) -> str:
        return (
            f"WebhookService(allow_hosts={list(self.allow_hosts)!r}, timeout={self.sender.timeout:g}, "
            f"max_attempts={self.delivery.max_attempts})"
        )

    # ------------------------------------------------------------------ #
    # Endpoints (current tenant)
    # ------------------------------------------------------------------ #

    def _check_endpoint(self, url: Any, events: Any, description: Any) -> list[str]:
        errors: list[dict[str, Any]] = []
        if not isinstance(url, str):
            errors.append(_error("url", "must be a string"))
        else:
            try:
                validate_url(url, self.allow_hosts)
            except UnsafeURLError as exc:
                errors.append(_error("url", str(exc).removeprefix("webhook URL refused: ")))
        cleaned: list[str] = []
        if not isinstance(events, list | tuple) or not events:
            errors.append(_error("events", "must be a non-empty list of event types"))
        elif len(events) > MAX_EVENTS:
            errors.append(_error("events", f"at most {MAX_EVENTS} event types"))
        else:
            for index, event in enumerate(events):
                if (
                    not isinstance(event, str)
                    or len(event) > MAX_EVENT_TYPE
                    or not _SUBSCRIPTION.match(event)
                ):
                    errors.append(
                        _error(
                            "events", "must be an event type like 'order.created', 'order.*' or '*'", index
                        )
                    )
                elif event not in cleaned:
                    cleaned.append(event)
        if not isinstance(description, str):
            errors.append(_error("description", "must be a string"))
        elif len(description) > MAX_DESCRIPTION:
            errors.append(_error("description", f"at most {MAX_DESCRIPTION} characters"))
        if errors:
            raise ValidationError(errors)
        return cleaned

    async def create_endpoint(
        self, url: str, events: Sequence[str], description: str = ""
    ) -> tuple[WebhookEndpoint, str]:
        """Register an endpoint for the current tenant.

        Args:
            url: An ``http(s)`` URL that passes :func:`~tenantkit.security.ssrf.validate_url`.
            events: Event types (``"order.created"``), prefixes (``"order.*"``) or ``"*"``.
            description: Free text, up to 500 characters.

        Returns:
            The endpoint and its ``whsec_...`` signing secret: show the secret
            to the caller now, it is never listed again.

        Raises:
            ValidationError: one entry per invalid field (``loc`` like ``["body", "url"]``).
            TenantScopeError: no tenant in context.
        """
        _require_tenant()
        cleaned = self._check_endpoint(url, events, description)
        secret = generate_secret()
        endpoint = WebhookEndpoint(
            id=new_id(), url=url, events=cleaned, secret=secret, description=description, active=True
        )
        async with self.database.session() as session, session.begin():
            session.add(endpoint)
        logger.info("webhook endpoint created", extra={"endpoint_id": str(endpoint.id)})
        return endpoint, secret

    async def list_endpoints(self) -> list[WebhookEndpoint]:
        """The current tenant's endpoints, oldest first."""
        _require_tenant()
        async with self.database.session() as session:
            result = await session.scalars(
                select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
            )
            return list(result.all())

    async def get_endpoint(self, endpoint_id: uuid.UUID) -> WebhookEndpoint:
        """One endpoint of the current tenant.

        Raises:
            NotFoundError: unknown, or another tenant's.
        """
        _require_tenant()
        async with self.database.session() as session:
            endpoint = await scoped_get(session, WebhookEndpoint, endpoint_id)
        if endpoint is None:
            raise NotFoundError("No such webhook endpoint.")
        return endpoint

    async def delete_endpoint(self, endpoint_id: uuid.UUID) -> None:
        """Delete an endpoint of the current tenant, with its deliveries and their log.

        Raises:
            NotFoundError: unknown, or another tenant's.
        """
        _require_tenant()
        async with self.database.session() as session, session.begin():
            endpoint = await scoped_get(session, WebhookEndpoint, endpoint_id)
            if endpoint is None:
                raise NotFoundError("No such webhook endpoint.")
            await session.delete(endpoint)
        logger.info("webhook endpoint deleted", extra={"endpoint_id": str(endpoint_id)})

    # ------------------------------------------------------------------ #
    # Events and deliveries (current tenant)
    # ------------------------------------------------------------------ #

    async def emit(
        self, event_type: str, data: Any, *, session: AsyncSession | None = None
    ) -> list[uuid.UUID]:
        """Queue ``event_type`` for every active endpoint of the current tenant subscribed to it.

        Args:
            event_type: ``resource.event`` (``"order.created"``).
            data: The payload, sent as the body's ``data``. JSON data;
                ``datetime``/``date`` become ISO 8601, ``UUID`` and ``Decimal`` strings.
            session: Write the deliveries in this session's transaction (the
                caller commits) so the event exists only if the change does.

        Returns:
            The ids of the deliveries created (empty when nobody listens).

        Raises:
            ValueError: the event type is malformed or the payload is not JSON data
                or is larger than 256 KiB.
            TenantScopeError: no tenant in context.
        """
        _require_tenant()
        if (
            not isinstance(event_type, str)
            or len(event_type) > MAX_EVENT_TYPE
            or not _EVENT_TYPE.match(event_type)
        ):
            raise ValueError("event_type must look like 'order.created'")
        try:
            encoded = json.dumps(data, default=json_default, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"webhook payload is not JSON data: {exc}") from None
        if len(encoded.encode()) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"webhook payload is larger than {MAX_PAYLOAD_BYTES} bytes")
        payload = json.loads(encoded)
        if session is not None:
            ids = await self._emit(session, event_type, payload)
            self._enqueue_after_commit(session, ids)
            return ids
        async with self.database.session() as own, own.begin():
            ids = await self._emit(own, event_type, payload)
        await self.delivery.enqueue(ids)
        return ids

    async def _emit(self, session: AsyncSession, event_type: str, payload: Any) -> list[uuid.UUID]:
        endpoints = await session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.active.is_(True)))
        now = utcnow()
        due = now + timedelta(seconds=self.delivery.relay_after)  # the relay's cue if the job never runs
        ids: list[uuid.UUID] = []
        for endpoint in endpoints.all():
            if not matches_event(endpoint.events, event_type):
                continue
            delivery = WebhookDelivery(
                tenant_id=endpoint.tenant_id,
                id=new_id(),
                endpoint_id=endpoint.id,
                event_id=f"msg_{uuid.uuid4().hex}",
                event_type=event_type,
                payload=payload,
                status="pending",
                attempts=0,
                next_attempt_at=due,
                created_at=now,
            )
            session.add(delivery)
            ids.append(delivery.id)
        return ids

    def _enqueue_after_commit(self, session: AsyncSession, ids: list[uuid.UUID]) -> None:
        """Queue the jobs of ``ids`` once the caller's transaction commits; forget them on rollback."""
        if not ids:
            return
        pending: list[uuid.UUID] | None = session.info.get(_PENDING_KEY)
        if pending is not None:
            pending.extend(ids)
            return
        pending = session.info[_PENDING_KEY] = list(ids)
        sync_session = session.sync_session

        def committed(_: object) -> None:
            queued = list(pending)
            pending.clear()
            if queued:  # runs in the caller's task: the job inherits its tenant context
                self.jobs.spawn(self.delivery.enqueue(queued))

        def rolled_back(_: object) -> None:
            pending.clear()

        event.listen(sync_session, "after_commit", committed)
        event.listen(sync_session, "after_rollback", rolled_back)

    async def list_deliveries(
        self, status: str | None = None, *, endpoint_id: uuid.UUID | None = None, limit: int = 100
    ) -> list[WebhookDelivery]:
        """The current tenant's deliveries, newest first.

        Args:
            status: Only ``"pending"``, ``"delivered"`` or ``"dead"`` ones.
            endpoint_id: Only those of this endpoint.
            limit: At most this many.
        """
        _require_tenant()
        if status is not None and status not in DELIVERY_STATUSES:
            raise ValueError(f"status must be one of {DELIVERY_STATUSES}")
        statement = select(WebhookDelivery).order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
        if status is not None:
            statement = statement.where(WebhookDelivery.status == status)
        if endpoint_id is not None:
            statement = statement.where(WebhookDelivery.endpoint_id == endpoint_id)
        async with self.database.session() as session:
            result = await session.scalars(statement.limit(limit))
            return list(result.all())

    async def list_attempts(self, delivery_id: uuid.UUID) -> list[WebhookAttempt]:
        """The attempt log of one delivery of the current tenant, oldest first."""
        _require_tenant()
        async with self.database.session() as session:
            result = await session.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id == delivery_id)
                .order_by(WebhookAttempt.created_at, WebhookAttempt.attempt)
            )
            return list(result.all())

    async def requeue(self, delivery_id: uuid.UUID) -> WebhookDelivery:
        """Give a dead delivery of the current tenant a fresh set of attempts, now.

        Goes through the job system's one requeue path: the delivery's dead
        letter is requeued (:meth:`tenantkit.jobs.JobRunner.requeue`), exactly
        as ``POST /jobs/dead-letters/{id}/requeue`` would.

        Raises:
            NotFoundError: unknown, or another tenant's.
            ConflictError: the delivery is not dead.
        """
        tenant_id = _require_tenant()
        async with self.database.session() as session, session.begin():
            delivery = await scoped_get(session, WebhookDelivery, delivery_id)
            if delivery is None:
                raise NotFoundError("No such webhook delivery.")
            if delivery.status != "dead":
                raise ConflictError("Only dead deliveries can be requeued.")
            delivery.status = "pending"
            delivery.attempts = 0
            delivery.next_attempt_at = utcnow() + timedelta(seconds=self.delivery.relay_after)
        dead, _ = await self.jobs.dead_letters(tenant_id=tenant_id, task_name=DELIVER, limit=500)
        letter = next(
            (d for d in dead if d.requeued_at is None and d.args.get("args") == [str(delivery_id)]), None
        )
        try:
            if letter is not None:
                await self.jobs.requeue(letter.id)
            else:  # dead before it had a dead letter (an older release): a fresh job
                await self.jobs.enqueue(DELIVER, str(delivery_id))
        except Exception as exc:
            logger.warning("webhook requeue not queued, the relay will: %s", type(exc).__name__)
        return delivery
