"""audit chain: seq, prev_hash and hash on audit_events; audit_heads (one row per tenant)

Every audit row gets its tenant's sequence number, the previous row's hash and
its own SHA-256 over the canonical encoding of ``tenantkit.audit.chain`` (version
1, frozen below: a migration must not change when the library does). Rows that
exist already are chained here, per tenant in ``(created_at, id)`` order, and
``audit_heads`` gets each tenant's last ``(seq, hash)``. ``audit_heads`` is
tenant-owned: forced row-level security with tenantkit's policies.

Stop processes running an older tenantkit before upgrading: rows they write
afterwards have no ``seq`` and ``tenantkit audit verify`` reports them.

Revision ID: tk0007
Revises: tk0006
Create Date: 2026-12-08 09:00:00.000000
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from tenantkit.db.rls import disable_rls, enable_rls

revision = "tk0007"
down_revision = "tk0006"
branch_labels = None
depends_on = None

GENESIS = "0" * 64
PAGE = 2000

_events = sa.table(
    "audit_events",
    sa.column("tenant_id", sa.Uuid()),
    sa.column("id", sa.Uuid()),
    sa.column("action", sa.String()),
    sa.column("actor_id", sa.Uuid()),
    sa.column("target", sa.String()),
    sa.column("ip", sa.String()),
    sa.column("request_id", sa.String()),
    sa.column("data", sa.JSON()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("seq", sa.BigInteger()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)
_heads = sa.table(
    "audit_heads",
    sa.column("tenant_id", sa.Uuid()),
    sa.column("seq", sa.BigInteger()),
    sa.column("hash", sa.String()),
)


def _hash_v1(row: dict[str, Any]) -> str:
    """tenantkit.audit.chain.row_hash, encoding version 1 (frozen copy)."""
    created: datetime = row["created_at"]
    created = created if created.tzinfo else created.replace(tzinfo=UTC)
    document: dict[str, Any] = {
        name: None if row[name] is None else str(row[name])
        for name in ("tenant_id", "id", "prev_hash", "action", "actor_id", "target", "ip", "request_id")
    }
    document.update(
        seq=row["seq"],
        data=row["data"],
        created_at=created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        v=1,
    )
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    return hashlib.sha256(encoded).hexdigest()


def _chain_existing_rows() -> None:
    bind = op.get_bind()
    columns = [c for c in _events.c if c.name not in ("seq", "prev_hash", "hash")]
    write = (
        _events.update()
        .where(_events.c.tenant_id == sa.bindparam("t"), _events.c.id == sa.bindparam("i"))
        .values(seq=sa.bindparam("s"), prev_hash=sa.bindparam("p"), hash=sa.bindparam("h"))
    )
    tenants = bind.execute(sa.select(_events.c.tenant_id).distinct()).scalars().all()
    for tenant_id in sorted(tenants, key=str):
        seq, prev, after = 0, GENESIS, None
        while True:
            query = (
                sa.select(*columns)
                .where(_events.c.tenant_id == tenant_id)
                .order_by(_events.c.created_at, _events.c.id)
                .limit(PAGE)
            )
            if after is not None:
                query = query.where(sa.tuple_(_events.c.created_at, _events.c.id) > sa.tuple_(*after))
            rows = [dict(row) for row in bind.execute(query).mappings()]
            if not rows:
                break
            updates = []
            for row in rows:
                seq += 1
                row.update(seq=seq, prev_hash=prev)
                prev = _hash_v1(row)
                updates.append({"t": tenant_id, "i": row["id"], "s": seq, "p": row["prev_hash"], "h": prev})
            bind.execute(write, updates)
            after = (rows[-1]["created_at"], rows[-1]["id"])
        bind.execute(_heads.insert().values(tenant_id=tenant_id, seq=seq, hash=prev))


def upgrade() -> None:
    op.create_table(
        "audit_heads",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_audit_heads")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_audit_events_tenant_id_seq", ["tenant_id", "seq"], unique=True)
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:  # the owner reads every tenant's rows for the backfill, inside this transaction only
        op.execute('ALTER TABLE "audit_events" NO FORCE ROW LEVEL SECURITY')
    _chain_existing_rows()
    if postgres:
        op.execute('ALTER TABLE "audit_events" FORCE ROW LEVEL SECURITY')
    enable_rls(op, "audit_heads")


def downgrade() -> None:
    disable_rls(op, "audit_heads")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_tenant_id_seq")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("seq")
    op.drop_table("audit_heads")
