"""``DeadLetterStore``: the one place jobs that used up their attempts are kept, listed and marked requeued.

Every job that fails its last attempt lands here, whatever it does (mail,
file processing, webhook delivery); operators list and requeue them through
``GET /jobs/dead-letters``, ``POST /jobs/dead-letters/{id}/requeue`` and
``tenantkit jobs dead-letters list|requeue``, all of which go through
:meth:`tenantkit.jobs.JobRunner.requeue`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import and_, or_, select, update
from taskiq import TaskiqMessage

from tenantkit.db.base import utcnow
from tenantkit.db.engine import Database
from tenantkit.db.scoping import tenant_scope, unscoped
from tenantkit.events import NIL_TENANT
from tenantkit.jobs.models import DeadLetter
from tenantkit.pagination import decode_cursor, encode_cursor

__all__ = ["ALL_TENANTS", "DeadLetterStore", "dead_letter_json"]

#: Pass as ``tenant_id`` to :meth:`DeadLetterStore.list` to list every tenant's.
ALL_TENANTS = object()


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON data (unknown types become strings)."""
    return json.loads(json.dumps(value, default=str))


def dead_letter_json(row: DeadLetter) -> dict[str, Any]:
    """The API shape of a dead letter (``tenant_id`` null for platform jobs)."""
    return {
        "id": str(row.id),
        "tenant_id": None if row.tenant_id == NIL_TENANT else str(row.tenant_id),
        "task_name": row.task_name,
        "args": row.args.get("args", []),
        "kwargs": row.args.get("kwargs", {}),
        "labels": row.labels,
        "error": row.error,
        "attempts": row.attempts,
        "created_at": row.created_at.isoformat(),
        "requeued_at": row.requeued_at.isoformat() if row.requeued_at else None,
    }


class DeadLetterStore:
    """The ``dead_letters`` table.

    Args:
        database: The database holding it.
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    async def add(self, message: TaskiqMessage, error: str, attempts: int) -> uuid.UUID:
        """Keep ``message`` as a dead letter; returns its id."""
        raw_tenant = message.labels.get("tenant_id")
        row = DeadLetter(
            id=uuid.uuid4(),
            tenant_id=uuid.UUID(str(raw_tenant)) if raw_tenant else NIL_TENANT,
            task_name=message.task_name,
            args=json_safe({"args": message.args, "kwargs": message.kwargs}),
            labels=json_safe(dict(message.labels)),
            error=error,
            attempts=attempts,
        )
        with tenant_scope(row.tenant_id):  # dead letters are tenant-owned (ORM scoping and RLS)
            async with self.database.session() as session, session.begin():
                session.add(row)
        return row.id

    async def list(
        self,
        *,
        tenant_id: uuid.UUID | object | None = ALL_TENANTS,
        task_name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[DeadLetter], str | None]:
        """Dead letters, newest first, and the cursor of the next page (or ``None``).

        Args:
            tenant_id: One tenant's (``None`` for jobs without a tenant), or :data:`ALL_TENANTS`.
            task_name: Only this task's.
            limit: Page size.
            cursor: ``next_cursor`` of the previous page.
        """
        query = select(DeadLetter).order_by(DeadLetter.created_at.desc(), DeadLetter.id.desc())
        if tenant_id is not ALL_TENANTS:
            query = query.where(DeadLetter.tenant_id == (tenant_id or NIL_TENANT))
        if task_name is not None:
            query = query.where(DeadLetter.task_name == task_name)
        if cursor:
            at, last_id = decode_cursor(cursor)
            query = query.where(
                or_(
                    DeadLetter.created_at < at,
                    and_(DeadLetter.created_at == at, DeadLetter.id < last_id),
                )
            )
        scope = (
            unscoped("jobs: an operator lists every tenant's dead letters")
            if tenant_id is ALL_TENANTS
            else tenant_scope(tenant_id if isinstance(tenant_id, uuid.UUID) else NIL_TENANT)
        )
        with scope:
            async with self.database.session() as session:
                rows = list((await session.scalars(query.limit(limit + 1))).all())
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
        return rows, next_cursor

    async def get(self, dead_letter_id: uuid.UUID) -> DeadLetter | None:
        """One dead letter by id, or ``None`` (callers check its tenant)."""
        with (
            unscoped("jobs: find a dead letter by id (callers check its tenant)", system=True),
        ):
            async with self.database.session() as session:
                found: DeadLetter | None = await session.scalar(
                    select(DeadLetter).where(DeadLetter.id == dead_letter_id)
                )
                return found

    async def mark_requeued(self, row: DeadLetter) -> None:
        """Note that ``row`` went back on the queue."""
        with tenant_scope(row.tenant_id):
            async with self.database.session() as session, session.begin():
                await session.execute(
                    update(DeadLetter)
                    .where(DeadLetter.tenant_id == row.tenant_id, DeadLetter.id == row.id)
                    .values(requeued_at=utcnow())
                )
