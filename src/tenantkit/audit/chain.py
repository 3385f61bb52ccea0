"""The audit log's hash chain: canonical encoding, verification, and the chain heads.

Every audit row carries ``seq`` (1, 2, 3... per tenant), ``prev_hash`` (the
``hash`` of the tenant's row ``seq - 1``, :data:`GENESIS` for ``seq`` 1) and
``hash``: SHA-256 (hex) over :func:`canonical`, a sorted-key JSON document of
every field of the row, ``seq`` and ``prev_hash`` included. ``audit_heads``
holds each tenant's newest ``(seq, hash)``.

:func:`verify_chain` recomputes the chains. An edited row no longer matches
its hash; a deleted row leaves a gap in ``seq`` (or the chain short of its
head); rows reordered (``seq`` swapped) break their hashes and links. A
rewrite of a whole chain and its head by someone with write access to the
database is caught only against heads published elsewhere beforehand:
:func:`chain_heads` gives them, ``verify_chain(anchors=...)`` checks them.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from tenantkit.audit.models import AuditHead
from tenantkit.db.engine import Database
from tenantkit.db.models import AuditEvent
from tenantkit.db.scoping import unscoped

__all__ = [
    "GENESIS",
    "Anchor",
    "ChainProblem",
    "ChainReport",
    "canonical",
    "chain_heads",
    "normalize_data",
    "row_hash",
    "verify_chain",
]

#: ``prev_hash`` of a tenant's first row.
GENESIS = "0" * 64
#: Version of :func:`canonical`'s encoding (part of what is hashed).
ENCODING_VERSION = 1

_FIELDS = ("tenant_id", "id", "seq", "prev_hash", "action", "actor_id", "target", "ip", "request_id")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _moment(value: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (naive values are UTC)."""
    if value.tzinfo is not None and value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def canonical(row: Mapping[str, Any]) -> bytes:
    """The bytes hashed for an audit row: sorted-key, compact, ASCII JSON of all its fields.

    UUIDs as lower-case dashed text, ``created_at`` as UTC with microseconds
    (what both PostgreSQL and SQLite keep), ``data`` as stored (JSON).
    """
    document: dict[str, Any] = {name: _text(row[name]) for name in _FIELDS}
    document["seq"] = row["seq"]
    document["data"] = row["data"]
    document["created_at"] = _moment(row["created_at"])
    document["v"] = ENCODING_VERSION
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def row_hash(row: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of :func:`canonical`."""
    return hashlib.sha256(canonical(row)).hexdigest()


def normalize_data(data: Any) -> Any:
    """``data`` as it reads back from the JSON column (so its hash stays true after the round trip).

    Plain JSON (``str`` keys, lists, finite numbers) is returned as is; anything else
    (tuples, ``int`` keys, UUIDs, datetimes) goes through JSON and back (unknown types
    and non-finite numbers as text), so the stored row hashes as it was hashed.
    """
    if _plain(data):
        return data
    return json.loads(json.dumps(data, default=str), parse_constant=str)


def _plain(value: Any) -> bool:
    if isinstance(value, str | bool | int) or value is None:
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return False


@dataclass(frozen=True)
class Anchor:
    """A chain head published elsewhere: the tenant's row ``seq`` must still hash to ``hash``."""

    tenant_id: uuid.UUID
    seq: int
    hash: str


@dataclass(frozen=True)
class ChainProblem:
    """The first bad row of a tenant's chain (``row_id`` None when the row is missing)."""

    tenant_id: uuid.UUID
    row_id: uuid.UUID | None
    seq: int | None
    reason: str

    def __str__(self) -> str:
        row = str(self.row_id) if self.row_id else "-"
        seq = "-" if self.seq is None else str(self.seq)
        return f"tenant {self.tenant_id} row {row} seq {seq}: {self.reason}"


@dataclass
class ChainReport:
    """What :func:`verify_chain` found: rows and tenants checked, the first problem of each bad tenant."""

    rows: int = 0
    tenants: int = 0
    anchors: int = 0
    problems: list[ChainProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _TenantCheck:
    """Walks one tenant's rows in ``seq`` order and keeps its first problem."""

    def __init__(self, tenant_id: uuid.UUID, anchors: Mapping[int, str]) -> None:
        self.tenant_id = tenant_id
        self.anchors = anchors
        self.seq = 0
        self.hash = GENESIS
        self.problem: ChainProblem | None = None

    def fail(self, row_id: uuid.UUID | None, seq: int | None, reason: str) -> None:
        if self.problem is None:
            self.problem = ChainProblem(self.tenant_id, row_id, seq, reason)

    def row(self, row: Mapping[Any, Any]) -> None:
        if self.problem is not None:
            return
        seq, row_id = row["seq"], row["id"]
        if seq is None or row["hash"] is None or row["prev_hash"] is None:
            self.fail(row_id, seq, "row is not chained (no seq or hash)")
        elif seq <= self.seq:
            self.fail(row_id, seq, f"seq {seq} repeats (expected {self.seq + 1})")
        elif seq != self.seq + 1:
            missing = f"{self.seq + 1}" if seq == self.seq + 2 else f"{self.seq + 1}-{seq - 1}"
            self.fail(row_id, seq, f"seq {missing} missing before it (row deleted)")
        elif row_hash(row) != row["hash"]:
            self.fail(row_id, seq, "hash does not match the row's contents (row edited or moved)")
        elif row["prev_hash"] != self.hash:
            self.fail(row_id, seq, f"prev_hash does not link to seq {self.seq} (rows reordered or replaced)")
        elif seq in self.anchors and self.anchors[seq] != row["hash"]:
            self.fail(row_id, seq, "hash differs from the published anchor (chain rewritten)")
        else:
            self.seq, self.hash = seq, row["hash"]

    def finish(self, head: tuple[int, str] | None, anchored: Iterable[int]) -> None:
        if self.problem is not None:
            return
        if head is None:
            if self.seq:
                self.fail(None, self.seq, "tenant has rows but no chain head")
        elif head[0] != self.seq:
            self.fail(
                None,
                self.seq + 1,
                f"chain ends at seq {self.seq} but its head is at seq {head[0]} (rows deleted)",
            )
        elif head[1] != self.hash:
            self.fail(None, self.seq, "chain head hash differs from the last row's hash")
        missing = sorted(seq for seq in anchored if seq > self.seq)
        if missing:
            self.fail(
                None,
                missing[0],
                f"published anchor at seq {missing[0]} is past the chain's end (rows deleted)",
            )


async def chain_heads(database: Database, tenant_id: uuid.UUID | None = None) -> list[Anchor]:
    """Every tenant's chain head (or ``tenant_id``'s), ordered by tenant: what to publish elsewhere."""
    statement = select(AuditHead.tenant_id, AuditHead.seq, AuditHead.hash).order_by(AuditHead.tenant_id)
    if tenant_id is not None:
        statement = statement.where(AuditHead.tenant_id == tenant_id)
    with unscoped("audit chain heads", system=True):
        async with database.session() as session, session.begin():
            rows = (await session.execute(statement)).all()
    return [Anchor(row.tenant_id, row.seq, row.hash) for row in rows]


async def verify_chain(
    database: Database,
    tenant_id: uuid.UUID | None = None,
    *,
    anchors: Iterable[Anchor] = (),
    batch: int = 2000,
) -> ChainReport:
    """Recompute every tenant's chain (or ``tenant_id``'s) and check it against its head and ``anchors``.

    Streams the rows in ``(tenant_id, seq)`` order (the unique index) across
    tenants (an :func:`~tenantkit.db.scoping.unscoped` read). The report
    names the first bad row of each broken tenant.
    """
    published: dict[uuid.UUID, dict[int, str]] = {}
    for anchor in anchors:
        if tenant_id is None or anchor.tenant_id == tenant_id:
            published.setdefault(anchor.tenant_id, {})[anchor.seq] = anchor.hash
    heads = {head.tenant_id: (head.seq, head.hash) for head in await chain_heads(database, tenant_id)}
    report = ChainReport(anchors=sum(len(v) for v in published.values()))
    table = AuditEvent.__table__
    statement = select(table).order_by(
        table.c.tenant_id, table.c.seq
    )  # NULLs (unchained) last on PG, first on SQLite
    if tenant_id is not None:
        statement = statement.where(table.c.tenant_id == tenant_id)
    seen: set[uuid.UUID] = set()
    check: _TenantCheck | None = None

    def close(done: _TenantCheck) -> None:
        done.finish(heads.get(done.tenant_id), published.get(done.tenant_id, {}))
        if done.problem is not None:
            report.problems.append(done.problem)

    with unscoped("audit chain verification", system=True):
        async with database.session() as session, session.begin():
            result = await session.stream(statement.execution_options(yield_per=batch))
            async for row in result.mappings():
                if check is None or check.tenant_id != row["tenant_id"]:
                    if check is not None:
                        close(check)
                    check = _TenantCheck(row["tenant_id"], published.get(row["tenant_id"], {}))
                    seen.add(check.tenant_id)
                check.row(row)
                report.rows += 1
    if check is not None:
        close(check)
    for orphan in sorted(set(heads) - seen) + sorted(set(published) - seen - set(heads)):
        close(_TenantCheck(orphan, published.get(orphan, {})))
    report.tenants = len(seen | set(heads))
    report.problems.sort(key=lambda problem: str(problem.tenant_id))
    return report
