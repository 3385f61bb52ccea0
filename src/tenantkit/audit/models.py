"""``audit_heads``: the last link of each tenant's audit hash chain.

One row per tenant: the ``seq`` and ``hash`` of its newest audit row. The
batch writer takes it with a row lock (``INSERT ... ON CONFLICT DO UPDATE``
locks the row on PostgreSQL) in the same transaction as the rows it adds, so
writers in several processes extend one chain per tenant without forking it.
Tenant-owned like ``audit_events`` (row-level security on PostgreSQL).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from tenantkit.db.base import Base, TenantOwned

__all__ = ["AuditHead"]


class AuditHead(TenantOwned, Base):
    """A tenant's chain head: ``seq`` and ``hash`` of its newest audit row (``seq`` 0: none yet)."""

    __tablename__ = "audit_heads"

    # ``tenant_id`` (from TenantOwned) is the whole primary key.
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))
