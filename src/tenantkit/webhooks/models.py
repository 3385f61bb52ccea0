"""Webhook tables: endpoints, the delivery outbox and the attempt log (all tenant-scoped).

Every primary key, unique constraint and foreign key starts with
``tenant_id`` (the Citus rule for tables distributed by tenant), e.g.
``(tenant_id, endpoint_id) → webhook_endpoints (tenant_id, id)``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKeyConstraint, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

import tenantkit.db.models  # noqa: F401  (the ``tenants`` table the foreign keys point to)
from tenantkit.db.base import Base, utcnow
from tenantkit.db.scoping import TenantScoped

__all__ = ["DELIVERY_STATUSES", "WebhookAttempt", "WebhookDelivery", "WebhookEndpoint"]

DELIVERY_STATUSES = ("pending", "delivered", "dead")


class WebhookEndpoint(TenantScoped, Base):
    """A URL a tenant receives events at. Primary key ``(tenant_id, id)``.

    Attributes:
        url: Where deliveries are POSTed; checked by :func:`~tenantkit.security.ssrf.validate_url`.
        events: Event types to receive (``"order.created"``), prefixes
            (``"order.*"``) or ``"*"`` for every event.
        secret: The ``whsec_...`` signing key. It has to be readable to sign,
            so it is stored as is; the API shows it once, at creation.
        description: Free text for the tenant's own bookkeeping.
        active: Inactive endpoints get no new deliveries.
        created_at: When the endpoint was registered.
    """

    __tablename__ = "webhook_endpoints"

    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(500), default="")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)

    def __repr__(self) -> str:  # never the URL (it may carry a token) nor the secret
        return f"WebhookEndpoint(id={self.id!s}, events={self.events!r}, active={self.active!r})"


class WebhookDelivery(TenantScoped, Base):
    """One event for one endpoint: a row of the persistent outbox.

    Attributes:
        endpoint_id: The endpoint it goes to (same tenant).
        event_id: The ``webhook-id`` header, ``msg_<uuid hex>``; stable across
            retries so receivers can deduplicate.
        event_type: The body's ``type``.
        payload: The body's ``data``.
        status: ``"pending"``, ``"delivered"`` or ``"dead"`` (gave up).
        attempts: Attempts made so far.
        next_attempt_at: When the next attempt is due (pending deliveries).
        last_status_code: The HTTP status of the last attempt, if one was received.
        last_error: Why the last attempt failed.
        created_at: When the event was emitted; the body's ``timestamp``.
        delivered_at: When a 2xx answer arrived.
    """

    __tablename__ = "webhook_deliveries"

    endpoint_id: Mapped[uuid.UUID]
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(200))
    payload: Mapped[Any] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_status_code: Mapped[int | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(
            ["tenant_id", "endpoint_id"],
            ["webhook_endpoints.tenant_id", "webhook_endpoints.id"],
            ondelete="CASCADE",
        ),
        UniqueConstraint("tenant_id", "event_id"),
        CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_tenant_id_endpoint_id", "tenant_id", "endpoint_id"),
    )

    def __repr__(self) -> str:
        return (
            f"WebhookDelivery(id={self.id!s}, event_type={self.event_type!r}, "
            f"status={self.status!r}, attempts={self.attempts!r})"
        )


class WebhookAttempt(TenantScoped, Base):
    """One HTTP attempt of a delivery (the delivery log).

    Attributes:
        delivery_id: The delivery attempted (same tenant).
        attempt: Its number, from 1 (restarts at 1 after a requeue).
        status_code: The HTTP status received, or ``None`` (no answer).
        error: Why it failed, or ``None`` on success.
        duration_ms: How long the attempt took.
        created_at: When it finished.
    """

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[uuid.UUID]
    attempt: Mapped[int]
    status_code: Mapped[int | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(String(500), default=None)
    duration_ms: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(
            ["tenant_id", "delivery_id"],
            ["webhook_deliveries.tenant_id", "webhook_deliveries.id"],
            ondelete="CASCADE",
        ),
        Index("ix_webhook_attempts_tenant_id_delivery_id", "tenant_id", "delivery_id"),
    )

    def __repr__(self) -> str:
        return (
            f"WebhookAttempt(delivery_id={self.delivery_id!s}, attempt={self.attempt}, "
            f"status_code={self.status_code})"
        )
