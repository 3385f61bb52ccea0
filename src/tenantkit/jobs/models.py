"""The ``dead_letters`` table: jobs that failed their last attempt.

Jobs without a tenant use the nil UUID as ``tenant_id`` (as audit events do),
so the primary key can lead with ``tenant_id`` (the Citus rule); the API shows
them with ``tenant_id: null``. The table is tenant-owned (ORM scoping and
row-level security): operators read across tenants inside ``unscoped(reason)``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tenantkit.db.base import Base, TenantOwned, new_id, utcnow
from tenantkit.events import NIL_TENANT

__all__ = ["NIL_TENANT", "DeadLetter"]


class DeadLetter(TenantOwned, Base):
    """A job that used up its attempts, kept to be inspected and requeued.

    Attributes:
        task_name: The registered task (``tenantkit.send_mail``).
        args: ``{"args": [...], "kwargs": {...}}`` as the job was queued.
        labels: The job's labels (tenant id, request id, attempts...).
        error: The last error, ``Type: message`` (truncated).
        attempts: How many times it ran.
        requeued_at: When an operator last put it back on the queue.
    """

    __tablename__ = "dead_letters"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    task_name: Mapped[str] = mapped_column(String(200))
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    requeued_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (Index("ix_dead_letters_tenant_id_created_at", "tenant_id", "created_at"),)
