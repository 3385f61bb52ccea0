"""``AuditLog``: security events buffered in memory and written in batches.

``record()`` appends to a buffer and returns at once; a background flusher
writes the buffer every ``batch_size`` events or ``flush_ms`` milliseconds,
whichever comes first, into ``audit_events``: one transaction and one batched
``INSERT`` per chunk of ``batch_size`` rows (a single statement executed with
every row's parameters; asyncpg pipelines them in one round trip, which is
several times faster than compiling a multi-``VALUES`` statement per batch).
``stop()`` (the kit's shutdown) writes whatever is left.

Each row is chained to the previous row of its tenant (:mod:`tenantkit.audit.chain`):
per tenant of a batch, the writer takes the tenant's head in ``audit_heads``
with a row lock (an upsert, which locks the row on PostgreSQL; SQLite
serialises writers), numbers and hashes the rows in memory, inserts them and
moves the head, all in the batch's transaction. Tenants are locked in one
order (sorted ids), so concurrent writers in several processes never deadlock.
On PostgreSQL the upsert also enters the tenant, so a chunk costs one
statement more per tenant than it did unchained (three: head, rows, head).

``audit_events`` is tenant-owned (row-level security on PostgreSQL): a batch
holding several tenants' events inserts each tenant's rows after setting that
tenant (``set_config('tenantkit.tenant_id', ..., true)``) in the same
transaction, so the policy's ``WITH CHECK`` holds for every row without
crossing tenants. Reads run in the queried tenant (:func:`tenant_scope`).

The buffer is bounded: past ``max_buffer`` events ``record()`` wakes the
flusher and async callers of :meth:`AuditLog.append` wait for room
(backpressure). Only past twice that (the database has been unreachable for a
long while) are the oldest events dropped, with an error in the log and the
``dropped`` counter raised, so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Insert, and_, bindparam, insert, or_, select, text, update
from sqlalchemy.dialects import sqlite

from tenantkit.audit.chain import GENESIS, normalize_data, row_hash
from tenantkit.audit.models import AuditHead
from tenantkit.db.base import new_id, utcnow
from tenantkit.db.engine import Database
from tenantkit.db.models import AuditEvent
from tenantkit.db.scoping import tenant_scope
from tenantkit.events import NIL_TENANT
from tenantkit.pagination import decode_cursor, encode_cursor

#: ``decode_cursor``/``encode_cursor`` stay importable from here for older callers.
__all__ = ["AuditLog", "AuditQuery", "decode_cursor", "encode_cursor"]

logger = logging.getLogger("tenantkit.audit")


# PostgreSQL: one round trip enters the tenant (for row-level security, for the rest of
# the transaction), creates or row-locks its head and returns it. The head's tenant_id
# *is* set_config's result, computed before the policy checks the row.
_TAKE_HEAD_PG = text(
    "INSERT INTO audit_heads AS h (tenant_id, seq, hash) "
    "VALUES (CAST(set_config('tenantkit.tenant_id', :tenant, true) AS uuid), 0, :genesis) "
    "ON CONFLICT (tenant_id) DO UPDATE SET seq = h.seq RETURNING h.seq, h.hash"
)


def _uuid(value: Any) -> uuid.UUID | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _clip(value: Any, size: int) -> str | None:
    return None if value is None else str(value)[:size]


def _row(event: dict[str, Any]) -> dict[str, Any]:
    created = event.get("created_at")
    if isinstance(created, str):
        created = datetime.fromisoformat(created)
    if isinstance(created, datetime) and created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return {
        "tenant_id": _uuid(event.get("tenant_id")) or NIL_TENANT,
        "id": _uuid(event.get("id")) or new_id(),
        "action": str(event["action"])[:64],
        "actor_id": _uuid(event.get("actor_id")),
        "target": _clip(event.get("target"), 200),
        "ip": _clip(event.get("ip"), 64),
        "request_id": _clip(event.get("request_id"), 128),
        "data": normalize_data(event.get("data") or {}),
        "created_at": created or utcnow(),
    }


def _take_head_sqlite() -> Insert:
    """``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``: the tenant's head, created if missing."""
    tenant = bindparam("tenant_id", type_=AuditHead.__table__.c.tenant_id.type)
    statement = sqlite.insert(AuditHead).values(tenant_id=tenant, seq=0, hash=GENESIS)
    return statement.on_conflict_do_update(
        index_elements=[AuditHead.tenant_id], set_={"seq": AuditHead.seq}
    ).returning(AuditHead.seq, AuditHead.hash)


def _chain(rows: list[dict[str, Any]], seq: int, prev: str) -> tuple[int, str]:
    """Number and hash ``rows`` after ``(seq, prev)``; returns the new head."""
    for row in rows:
        seq += 1
        row["seq"] = seq
        row["prev_hash"] = prev
        prev = row["hash"] = row_hash(row)
    return seq, prev


class AuditQuery:
    """Filters for :meth:`AuditLog.query` (all optional but the tenant)."""

    def __init__(
        self,
        tenant_id: uuid.UUID | None,
        *,
        action: str | None = None,
        actor_id: uuid.UUID | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> None:
        self.tenant_id = tenant_id or NIL_TENANT
        self.action = action
        self.actor_id = actor_id
        self.since = since
        self.until = until
        self.limit = limit
        self.cursor = cursor


class AuditLog:
    """Buffered, batched writer (and reader) of ``audit_events``.

    Args:
        database: Where events go.
        batch_size: Flush when this many events wait.
        flush_ms: Flush at least this often while events wait.
        max_buffer: Events kept in memory before callers are held back.
    """

    def __init__(
        self, database: Database, *, batch_size: int = 200, flush_ms: int = 200, max_buffer: int = 10000
    ) -> None:
        self.database = database
        self.batch_size = batch_size
        self.interval = flush_ms / 1000
        self.max_buffer = max(max_buffer, batch_size)
        #: Rows per batched INSERT (and per transaction).
        self.chunk = max(1, batch_size)
        self._take_head_sqlite = _take_head_sqlite()
        self._buffer: deque[dict[str, Any]] = deque()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        #: Events written, and events dropped because the buffer overflowed.
        self.written = 0
        self.dropped = 0

    def __repr__(self) -> str:
        return f"AuditLog(pending={len(self._buffer)}, written={self.written}, dropped={self.dropped})"

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopping

    @property
    def pending(self) -> int:
        """Events waiting to be written."""
        return len(self._buffer)

    def record(self, event: dict[str, Any]) -> None:
        """Buffer one event (``{"action", "tenant_id", "actor_id", ...}``); never blocks."""
        self._buffer.append(event)
        size = len(self._buffer)
        if size >= self.batch_size:
            self._wake.set()
        if size >= self.max_buffer:
            self._room.clear()
        if size > 2 * self.max_buffer:
            self._buffer.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.error("audit buffer overflow: %d events dropped so far", self.dropped)

    async def append(self, event: dict[str, Any]) -> None:
        """Buffer one event, waiting for room while the buffer is full (backpressure)."""
        if len(self._buffer) >= self.max_buffer:
            if self._task is None or self._task.done():
                await self.flush()
            else:
                self._wake.set()
                await self._room.wait()
        self.record(event)

    async def start(self) -> None:
        """Start the background flusher."""
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="tenantkit-audit-flusher")

    async def stop(self) -> None:
        """Stop the flusher and write every buffered event."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for _ in range(3):
            try:
                await self.flush()
                break
            except Exception as exc:
                logger.warning("audit flush on shutdown failed: %s", type(exc).__name__)
        if self._buffer:
            logger.error("audit log stopped with %d unwritten events", len(self._buffer))

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            if self.stopping:
                return
            try:
                await self.flush()
            except Exception as exc:  # the database is down: keep the events, try again later
                logger.warning(
                    "audit flush failed (%d events kept): %s", len(self._buffer), type(exc).__name__
                )
                await asyncio.sleep(self.interval * 4)

    async def flush(self) -> int:
        """Write every buffered event now; returns how many were written."""
        total = 0
        async with self._lock:
            while self._buffer:
                batch = [self._buffer.popleft() for _ in range(min(len(self._buffer), self.chunk))]
                try:
                    rows = [_row(event) for event in batch]
                    by_tenant: dict[uuid.UUID, list[dict[str, Any]]] = {}
                    for row in rows:
                        by_tenant.setdefault(row["tenant_id"], []).append(row)
                    postgres = self.database.dialect == "postgresql"
                    async with self.database.engine.begin() as connection:
                        # one lock order for every writer: no deadlock between processes
                        for tenant_id in sorted(by_tenant):
                            tenant_rows = by_tenant[tenant_id]
                            if postgres:
                                taken = await connection.execute(
                                    _TAKE_HEAD_PG, {"tenant": str(tenant_id), "genesis": GENESIS}
                                )
                            else:  # SQLite serialises writers: the transaction holds the lock
                                taken = await connection.execute(
                                    self._take_head_sqlite, {"tenant_id": tenant_id}
                                )
                            head = taken.one()
                            seq, last = _chain(tenant_rows, head.seq, head.hash)
                            await connection.execute(insert(AuditEvent), tenant_rows)
                            await connection.execute(
                                update(AuditHead)
                                .where(AuditHead.tenant_id == tenant_id)
                                .values(seq=seq, hash=last)
                            )
                except Exception:
                    self._buffer.extendleft(reversed(batch))
                    raise
                total += len(rows)
                self.written += len(rows)
                if len(self._buffer) < self.max_buffer:
                    self._room.set()
        self._room.set()
        return total

    async def query(self, query: AuditQuery) -> tuple[list[dict[str, Any]], str | None]:
        """One tenant's events, newest first, filtered; and the next page's cursor."""
        table = AuditEvent
        statement = (
            select(table)
            .where(table.tenant_id == query.tenant_id)
            .order_by(table.created_at.desc(), table.id.desc())
        )
        if query.action:
            if query.action.endswith(".*"):
                statement = statement.where(table.action.startswith(query.action[:-1], autoescape=True))
            else:
                statement = statement.where(table.action == query.action)
        if query.actor_id is not None:
            statement = statement.where(table.actor_id == query.actor_id)
        if query.since is not None:
            statement = statement.where(table.created_at >= query.since)
        if query.until is not None:
            statement = statement.where(table.created_at < query.until)
        if query.cursor:
            at, last = decode_cursor(query.cursor)
            statement = statement.where(
                or_(table.created_at < at, and_(table.created_at == at, table.id < last))
            )
        with tenant_scope(query.tenant_id):
            async with self.database.read_session() as session:
                rows = list((await session.scalars(statement.limit(query.limit + 1))).all())
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        items = [
            {
                "id": str(r.id),
                "action": r.action,
                "actor_id": str(r.actor_id) if r.actor_id else None,
                "target": r.target,
                "ip": r.ip,
                "request_id": r.request_id,
                "data": r.data,
                "created_at": r.created_at.isoformat(),
                "seq": r.seq,
                "hash": r.hash,
            }
            for r in rows
        ]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
        return items, next_cursor
