"""What ``tenantkit audit verify`` and ``tenantkit audit head`` run (on the kit's database)."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from tenantkit.audit.chain import Anchor, chain_heads, verify_chain
from tenantkit.db.engine import Database
from tenantkit.db.models import Tenant
from tenantkit.errors import ConfigurationError

__all__ = ["add_audit_commands", "audit_command"]


def add_audit_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``audit`` group (``verify``, ``head``) to the ``tenantkit`` parser."""
    audit = commands.add_parser("audit", help="the tamper-evident audit log")
    sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = sub.add_parser(
        "verify",
        help="recompute the audit hash chains; exit 1 naming the first bad row of each broken tenant",
    )
    verify.add_argument("--tenant", help="only this tenant's chain (id or slug)")
    verify.add_argument(
        "--anchors",
        type=Path,
        help="a file of heads published earlier (the JSON lines `tenantkit audit head` prints): "
        "each must still be in its chain",
    )
    head = sub.add_parser(
        "head", help="print each tenant's chain head as JSON lines (publish them elsewhere)"
    )
    head.add_argument("--tenant", help="only this tenant's head (id or slug)")


async def _tenant(database: Database, value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        pass
    async with database.session() as session:
        found = await session.scalar(select(Tenant.id).where(func.lower(Tenant.slug) == value.lower()))
    if found is None:
        raise ConfigurationError(f"unknown tenant {value!r}")
    return found


def _anchors(path: Path | None) -> list[Anchor]:
    if path is None:
        return []
    anchors = []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ConfigurationError(f"cannot read --anchors {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            anchors.append(Anchor(uuid.UUID(item["tenant_id"]), int(item["seq"]), str(item["hash"])))
        except (ValueError, KeyError, TypeError):
            raise ConfigurationError(f"--anchors {path}:{number}: not a head line") from None
    return anchors


async def audit_command(database: Database, args: argparse.Namespace) -> int:
    """Run ``tenantkit audit <verify|head>``; returns the exit status.

    0: every chain checked is intact; 1: a chain is broken (each broken tenant's first
    bad row on standard output). :class:`ConfigurationError` (the CLI's exit 2) when
    the check could not run (bad ``--tenant`` or ``--anchors``, database unreachable).
    """
    try:
        tenant_id = await _tenant(database, args.tenant)
        if args.audit_command == "head":
            at = datetime.now(UTC).isoformat()
            for head in await chain_heads(database, tenant_id):
                line = {"tenant_id": str(head.tenant_id), "seq": head.seq, "hash": head.hash, "at": at}
                print(json.dumps(line, separators=(",", ":")))
            return 0
        report = await verify_chain(database, tenant_id, anchors=_anchors(args.anchors))
    except SQLAlchemyError as exc:  # unreachable or unmigrated: not a verdict on the chain
        raise ConfigurationError(
            f"cannot read the audit log ({type(exc).__name__}); is the database reachable and "
            "migrated (`tenantkit db upgrade`)?"
        ) from None
    finally:
        await database.dispose()
    scope = f"tenant {tenant_id}" if tenant_id else f"{report.tenants} tenant(s)"
    anchored = f", {report.anchors} published anchor(s)" if report.anchors else ""
    if report.ok:
        print(f"audit chain OK: {report.rows} row(s) in {scope}{anchored}")
        return 0
    for problem in report.problems:
        print(f"audit chain BROKEN: {problem}")
    print(
        f"audit chain verification failed: {len(report.problems)} broken tenant(s); "
        f"{report.rows} row(s) in {scope}{anchored}",
        file=sys.stderr,
    )
    return 1
