"""The webhook dispatcher: endpoints, a persistent outbox and its delivery loop.

:meth:`WebhookDispatcher.emit` writes one ``pending`` row per subscribed
endpoint into ``webhook_deliveries`` (optionally inside the caller's own
transaction, so an event exists exactly when the change that caused it was
committed). :meth:`WebhookDispatcher.run_due`, called by any number of
workers, claims due rows, POSTs them and records the outcome:

* claiming is one ``UPDATE ... WHERE (tenant_id, id) IN (SELECT ... FOR UPDATE
  SKIP LOCKED)`` that also pushes ``next_attempt_at`` out by a lease, so two
  workers never send one delivery at the same time (on SQLite the single
  writer gives the same guarantee within one database file);
* each attempt is signed afresh (new ``webhook-timestamp``), goes only to the
  addresses :func:`~tenantkit.webhooks.ssrf.resolve_and_check` approved, never
  follows redirects, stops after the timeout and reads at most 64 KiB;
* a 2xx answer marks the delivery ``delivered``; anything else schedules a
  retry with exponential backoff and jitter, until ``max_attempts`` makes it
  ``dead`` (:meth:`WebhookDispatcher.requeue` revives it).

Delivery is at least once: a worker that dies mid-attempt leaves the row to be
retried after the lease. Receivers deduplicate on ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tenantkit.context import TenantRef, current_tenant_id, tenant_context
from tenantkit.db.base import new_id, utcnow
from tenantkit.db.engine import Database
from tenantkit.db.models import Tenant
from tenantkit.errors import (
    ConflictError,
    MissingDependencyError,
    NotFoundError,
    TenantScopeError,
    ValidationError,
)
from tenantkit.plugins.manager import call_event
from tenantkit.tenancy.scoping import scoped_get, unscoped
from tenantkit.webhooks.models import DELIVERY_STATUSES, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tenantkit.webhooks.signing import generate_secret, sign
from tenantkit.webhooks.ssrf import (
    UnsafeURLError,
    normalize_host,
    pinned_resolver,
    resolve_and_check,
    validate_url,
)

if TYPE_CHECKING:
    import pluggy

    from tenantkit.settings import Settings

__all__ = [
    "MAX_EVENTS",
    "MAX_PAYLOAD_BYTES",
    "MAX_RESPONSE_BYTES",
    "USER_AGENT",
    "AttemptResult",
    "WebhookDispatcher",
    "event_body",
    "matches_event",
]

logger = logging.getLogger("tenantkit.webhooks")

USER_AGENT = "tenantkit-webhooks"
MAX_RESPONSE_BYTES = 64 * 1024
"""At most this much of a receiver's answer is read; the rest is dropped with the connection."""
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_EVENTS = 100
MAX_DESCRIPTION = 500
MAX_EVENT_TYPE = 200
LEASE_MARGIN = 30.0
"""Seconds added to the timeout for the lease a claimed delivery is held under."""

_EVENT_TYPE = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$")
_SUBSCRIPTION = re.compile(r"^(?:\*|[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*(?:\.\*)?)$")
_rng = random.SystemRandom()


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


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def event_body(event_type: str, data: Any, timestamp: datetime) -> bytes:
    """The exact bytes POSTed: ``{"type", "timestamp", "data"}`` as compact JSON.

    Args:
        event_type: The event's type.
        data: The event's payload (JSON data).
        timestamp: When the event happened (rendered ISO 8601 with the UTC offset).
    """
    document = {"type": event_type, "timestamp": timestamp.isoformat(), "data": data}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one HTTP attempt got.

    Attributes:
        status_code: The HTTP status, or ``None`` when no answer arrived.
        error: Why the attempt failed, or ``None`` when it succeeded.
        duration_ms: Wall time of the attempt.
    """

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True, slots=True)
class _Job:
    tenant: TenantRef
    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: str
    event_type: str
    payload: Any
    created_at: datetime
    attempt: int
    url: str
    secret: str
    active: bool


def _error(field: str | int, msg: str, *more: str | int) -> dict[str, Any]:
    return {"loc": ["body", field, *more], "msg": msg, "type": "value_error"}


def _require_tenant() -> uuid.UUID:
    tenant_id = current_tenant_id()
    if tenant_id is None:
        raise TenantScopeError("webhooks need a tenant in context; enter one with tenant_context()")
    return tenant_id


def _unix_now() -> int:
    return int(time.time())


def _clip(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


async def _read_capped(content: Any, limit: int) -> int:
    remaining = limit
    while remaining > 0:
        chunk: bytes = await content.read(min(remaining, 16384))
        if not chunk:
            break
        remaining -= len(chunk)
    return limit - remaining


class WebhookDispatcher:
    """Webhook endpoints and deliveries for the current tenant, and the delivery loop.

    Endpoint and delivery methods act in the current tenant
    (:func:`~tenantkit.context.tenant_context`); :meth:`run_due` crosses
    tenants on purpose, inside ``unscoped("webhook dispatcher")``, to pick
    due deliveries, and handles each one back inside its own tenant.

    Args:
        database: The database holding the ``webhook_*`` tables.
        allow_hosts: Hosts exempt from the private-address refusal
            (``Settings.webhook_allow_hosts``).
        timeout: Seconds one attempt may take, DNS to last byte
            (``Settings.webhook_timeout``).
        max_attempts: Attempts before a delivery is dead
            (``Settings.webhook_max_attempts``).
        backoff_base: Seconds before the first retry; each further retry waits
            twice as long, less up to 20% jitter.
        backoff_cap: Longest wait between two attempts, in seconds.
        hook: The plugin manager's hook relay (``kit.hook``); when given,
            ``tenantkit_webhook_delivered`` and ``tenantkit_webhook_dead_lettered``
            are called.
        concurrency: Deliveries attempted at the same time by one :meth:`run_due`.
    """

    def __init__(
        self,
        database: Database,
        *,
        allow_hosts: Iterable[str] = (),
        timeout: float = 10.0,
        max_attempts: int = 5,
        backoff_base: float = 2.0,
        backoff_cap: float = 3600,
        hook: pluggy.HookRelay | None = None,
        concurrency: int = 10,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if backoff_base < 0 or backoff_cap < 0:
            raise ValueError("backoff_base and backoff_cap cannot be negative")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.database = database
        self.allow_hosts = tuple(allow_hosts)
        self.timeout = float(timeout)
        self.max_attempts = max_attempts
        self.backoff_base = float(backoff_base)
        self.backoff_cap = float(backoff_cap)
        self.hook = hook
        self.concurrency = concurrency

    @classmethod
    def from_settings(
        cls, database: Database, settings: Settings, *, hook: pluggy.HookRelay | None = None, **options: Any
    ) -> WebhookDispatcher:
        """A dispatcher configured from ``webhook_allow_hosts``, ``webhook_timeout`` and
        ``webhook_max_attempts``; ``options`` are passed on (``backoff_base``...)."""
        return cls(
            database,
            allow_hosts=settings.webhook_allow_hosts,
            timeout=settings.webhook_timeout,
            max_attempts=settings.webhook_max_attempts,
            hook=hook,
            **options,
        )

    def __repr__(self) -> str:
        return (
            f"WebhookDispatcher(allow_hosts={list(self.allow_hosts)!r}, timeout={self.timeout:g}, "
            f"max_attempts={self.max_attempts})"
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
            url: An ``http(s)`` URL that passes :func:`~tenantkit.webhooks.ssrf.validate_url`.
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
            encoded = json.dumps(data, default=_json_default, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"webhook payload is not JSON data: {exc}") from None
        if len(encoded.encode()) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"webhook payload is larger than {MAX_PAYLOAD_BYTES} bytes")
        payload = json.loads(encoded)
        if session is not None:
            return await self._emit(session, event_type, payload)
        async with self.database.session() as own, own.begin():
            return await self._emit(own, event_type, payload)

    async def _emit(self, session: AsyncSession, event_type: str, payload: Any) -> list[uuid.UUID]:
        endpoints = await session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.active.is_(True)))
        now = utcnow()
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
                next_attempt_at=now,
                created_at=now,
            )
            session.add(delivery)
            ids.append(delivery.id)
        return ids

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
        """Give a dead delivery of the current tenant a fresh set of attempts, due now.

        Raises:
            NotFoundError: unknown, or another tenant's.
            ConflictError: the delivery is not dead.
        """
        _require_tenant()
        async with self.database.session() as session, session.begin():
            delivery = await scoped_get(session, WebhookDelivery, delivery_id)
            if delivery is None:
                raise NotFoundError("No such webhook delivery.")
            if delivery.status != "dead":
                raise ConflictError("Only dead deliveries can be requeued.")
            delivery.status = "pending"
            delivery.attempts = 0
            delivery.next_attempt_at = utcnow()
        return delivery

    # ------------------------------------------------------------------ #
    # Delivery (all tenants)
    # ------------------------------------------------------------------ #

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        ``backoff_base * 2 ** (attempt - 1)``, capped at ``backoff_cap``, less up
        to 20% random jitter so retries of a burst spread out.
        """
        delay = min(self.backoff_cap, self.backoff_base * 2.0 ** min(max(attempt - 1, 0), 62))
        return delay * _rng.uniform(0.8, 1.0)

    async def run_due(self, limit: int = 100) -> int:
        """Attempt up to ``limit`` deliveries that are due, across tenants.

        Each delivery is attempted at most once per call (rows rescheduled
        during the call wait for the next one). Safe to run in several
        processes at once.

        Returns:
            The number of attempts made.
        """
        cutoff = utcnow()
        done = 0
        while done < limit:
            jobs = await self._claim(cutoff, min(self.concurrency, limit - done))
            if not jobs:
                break
            results = await asyncio.gather(*(self._process(job) for job in jobs), return_exceptions=True)
            for job, result in zip(jobs, results, strict=True):
                if isinstance(result, BaseException):
                    logger.error(
                        "webhook delivery bookkeeping failed",
                        exc_info=result,
                        extra={"delivery_id": str(job.delivery_id)},
                    )
            done += len(jobs)
        return done

    async def run_forever(self, interval: float = 1.0, stop: asyncio.Event | None = None) -> None:
        """Call :meth:`run_due` every ``interval`` seconds until ``stop`` is set.

        For a worker process or an application lifespan task. A full batch is
        followed at once by the next; errors are logged and retried.

        Args:
            interval: Seconds between two polls when there is nothing to do.
            stop: Set it to end the loop (cancelling the task works too).
        """
        stop = stop if stop is not None else asyncio.Event()
        limit = 100
        while not stop.is_set():
            try:
                count = await self.run_due(limit)
            except Exception:
                logger.exception("webhook dispatch round failed")
                count = 0
            if count >= limit:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    async def _claim(self, cutoff: datetime, limit: int) -> list[_Job]:
        lease = utcnow() + timedelta(seconds=self.timeout + LEASE_MARGIN)
        due = and_(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= cutoff)
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
            .values(attempts=WebhookDelivery.attempts + 1, next_attempt_at=lease)
            .returning(WebhookDelivery.tenant_id, WebhookDelivery.id)
            .execution_options(synchronize_session=False)
        )
        with unscoped("webhook dispatcher", system=True):
            async with self.database.session() as session, session.begin():
                claimed = [tuple(row) for row in (await session.execute(claim)).all()]
                if not claimed:
                    return []
                rows = await session.execute(
                    select(
                        WebhookDelivery.tenant_id,
                        WebhookDelivery.id,
                        WebhookDelivery.endpoint_id,
                        WebhookDelivery.event_id,
                        WebhookDelivery.event_type,
                        WebhookDelivery.payload,
                        WebhookDelivery.created_at,
                        WebhookDelivery.attempts,
                        WebhookEndpoint.url,
                        WebhookEndpoint.secret,
                        WebhookEndpoint.active,
                        Tenant.slug,
                    )
                    .join(
                        WebhookEndpoint,
                        and_(
                            WebhookEndpoint.tenant_id == WebhookDelivery.tenant_id,
                            WebhookEndpoint.id == WebhookDelivery.endpoint_id,
                        ),
                    )
                    .join(Tenant, Tenant.id == WebhookDelivery.tenant_id)
                    .where(tuple_(WebhookDelivery.tenant_id, WebhookDelivery.id).in_(claimed))
                    .order_by(WebhookDelivery.next_attempt_at)
                )
                return [
                    _Job(
                        tenant=TenantRef(row.tenant_id, row.slug),
                        delivery_id=row.id,
                        endpoint_id=row.endpoint_id,
                        event_id=row.event_id,
                        event_type=row.event_type,
                        payload=row.payload,
                        created_at=row.created_at,
                        attempt=row.attempts,
                        url=row.url,
                        secret=row.secret,
                        active=row.active,
                    )
                    for row in rows.all()
                ]

    async def _process(self, job: _Job) -> None:
        if job.active:
            result = await self.attempt(
                job.url, job.secret, job.event_id, job.event_type, job.payload, job.created_at
            )
        else:
            result = AttemptResult(None, "the endpoint is inactive", 0)
        await self._record(job, result)

    async def attempt(
        self, url: str, secret: str, event_id: str, event_type: str, data: Any, created_at: datetime
    ) -> AttemptResult:
        """Make one signed POST of an event and report what happened (never raises for HTTP trouble).

        Args:
            url: The endpoint URL; checked again with ``validate_url`` and
                ``resolve_and_check`` before connecting.
            secret: The endpoint's signing secret.
            event_id: The ``webhook-id``.
            event_type: The body's ``type``.
            data: The body's ``data``.
            created_at: The body's ``timestamp``.
        """
        body = event_body(event_type, data, created_at)
        started = time.perf_counter()
        status: int | None = None
        error: str | None
        try:
            async with asyncio.timeout(self.timeout):
                status = await self._post(url, secret, event_id, body)
        except UnsafeURLError as exc:
            error = str(exc)
        except TimeoutError:
            error = f"timed out after {self.timeout:g}s"
        except MissingDependencyError:
            raise
        except Exception as exc:  # any network trouble is a failed attempt, not a crash
            error = _clip(f"{type(exc).__name__}: {exc}".replace(url, "<url>"))
        else:
            if 200 <= status < 300:
                error = None
            elif 300 <= status < 400:
                error = f"redirect not followed (HTTP {status})"
            else:
                error = f"HTTP {status}"
        duration_ms = round((time.perf_counter() - started) * 1000)
        return AttemptResult(status, error, duration_ms)

    async def _post(self, url: str, secret: str, event_id: str, body: bytes) -> int:
        try:
            import aiohttp
            from yarl import URL
        except ImportError as exc:  # pragma: no cover - exercised without the extra only
            raise MissingDependencyError("jobs", "webhook delivery") from exc

        checked = validate_url(url, self.allow_hosts)
        target = URL(url)
        seen_host = normalize_host(target.raw_host or "")
        if checked.ip is not None:
            try:
                same_host = ipaddress.ip_address(seen_host) == checked.ip
            except ValueError:
                same_host = False
        else:
            same_host = seen_host == checked.host
        if not same_host or target.port != checked.port:
            raise UnsafeURLError("webhook URL refused: its host is read differently by the HTTP client")
        addresses = await resolve_and_check(checked.host, checked.port, self.allow_hosts)

        timestamp = _unix_now()
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "accept-encoding": "identity",
            "webhook-id": event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, event_id, timestamp, body),
        }
        connector = aiohttp.TCPConnector(
            resolver=pinned_resolver(checked.host, addresses), use_dns_cache=False, force_close=True, limit=1
        )
        async with (
            aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            ) as client,
            client.post(target, data=body, headers=headers, allow_redirects=False) as response,
        ):
            await _read_capped(response.content, MAX_RESPONSE_BYTES)
            status = response.status
            response.close()  # drop the connection instead of draining an endless body
            return status

    async def _record(self, job: _Job, result: AttemptResult) -> None:
        now = utcnow()
        delivered = result.ok
        dead = not delivered and (job.attempt >= self.max_attempts or not job.active)
        with tenant_context(job.tenant):
            try:
                async with self.database.session() as session, session.begin():
                    delivery = await scoped_get(session, WebhookDelivery, job.delivery_id)
                    if delivery is None:  # its endpoint was deleted meanwhile
                        return
                    session.add(
                        WebhookAttempt(
                            delivery_id=job.delivery_id,
                            attempt=job.attempt,
                            status_code=result.status_code,
                            error=result.error,
                            duration_ms=result.duration_ms,
                            created_at=now,
                        )
                    )
                    delivery.last_status_code = result.status_code
                    delivery.last_error = result.error
                    if delivered:
                        delivery.status = "delivered"
                        delivery.delivered_at = now
                    elif dead:
                        delivery.status = "dead"
                    else:
                        delivery.next_attempt_at = now + timedelta(seconds=self.backoff(job.attempt))
            except IntegrityError:  # deleted between the read and the write
                logger.info("webhook delivery vanished", extra={"delivery_id": str(job.delivery_id)})
                return
            log = {
                "delivery_id": str(job.delivery_id),
                "endpoint_id": str(job.endpoint_id),
                "event_type": job.event_type,
                "attempt": job.attempt,
                "status_code": result.status_code,
                "duration_ms": result.duration_ms,
            }
            if delivered:
                logger.info("webhook delivered", extra=log)
                if self.hook is not None:
                    await call_event(
                        self.hook.tenantkit_webhook_delivered,
                        endpoint_id=str(job.endpoint_id),
                        event_id=job.event_id,
                        status=result.status_code or 0,
                        attempt=job.attempt,
                    )
            elif dead:
                logger.warning("webhook dead-lettered", extra={**log, "error": result.error})
                if self.hook is not None:
                    await call_event(
                        self.hook.tenantkit_webhook_dead_lettered,
                        endpoint_id=str(job.endpoint_id),
                        event_id=job.event_id,
                        error=result.error or "",
                        attempts=job.attempt,
                    )
            else:
                logger.info("webhook attempt failed", extra={**log, "error": result.error})
