"""Audit events per second on PostgreSQL: batched ``AuditLog`` vs one INSERT per event.

The batched path is what ``kit.audit()`` does: events go to an in-memory
buffer and a background flusher writes them as multi-row INSERTs (200 rows
per statement by default). The baseline writes each event the obvious way:
its own transaction with one INSERT, awaited before the next event. Both go
through tenantkit's SQLAlchemy engine on the same temporary database; the
clock stops when every event is committed. Target: ≥ 20× the baseline.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import func, insert, select

from bench.common import figure, headline, line, postgres_database, scaled, target_text, write_result
from tenantkit import Settings, TenantKit
from tenantkit.audit.log import _row
from tenantkit.db.migrate import upgrade
from tenantkit.db.models import AuditEvent
from tenantkit.db.scoping import tenant_scope
from tenantkit.mail import MemoryMailer

N = int(os.environ.get("TENANTKIT_BENCH_AUDIT_EVENTS", "0")) or scaled(20000, 2000)
BASELINE_N = max(200, N // 10)  # the slow path needs fewer events for a stable rate


def event(tenant_id: uuid.UUID, n: int) -> dict[str, object]:
    return {
        "action": "bench.event",
        "tenant_id": str(tenant_id),
        "actor_id": str(uuid.uuid4()),
        "target": f"object-{n}",
        "ip": "203.0.113.7",
        "request_id": f"req-{n}",
        "data": {"n": n, "note": "benchmark"},
    }


async def main() -> dict[str, float]:
    async with postgres_database("audit") as (_dsn, url):
        settings = Settings.load(
            env="test",
            jwt_secret="bench-" + "x" * 40,
            database_url=url,
            data_dir=Path(tempfile.mkdtemp()),
            log_level="ERROR",
        )
        kit = TenantKit(settings, mailer=MemoryMailer(), autoload_plugins=False)
        await upgrade(kit.database)
        await kit.startup()
        try:
            engine = kit.database.engine
            tenant = uuid.uuid4()
            for n in range(50):  # warm the pool and the statement caches
                async with engine.begin() as connection:
                    await connection.execute(insert(AuditEvent).values(_row(event(tenant, n))))

            started = time.perf_counter()
            for n in range(BASELINE_N):
                async with engine.begin() as connection:
                    await connection.execute(insert(AuditEvent).values(_row(event(tenant, n))))
            baseline_rate = BASELINE_N / (time.perf_counter() - started)

            log = kit.audit_log
            batched_tenant = uuid.uuid4()
            started = time.perf_counter()
            for n in range(N):
                log.record(event(batched_tenant, n))
                if n % 500 == 499:
                    await asyncio.sleep(0)  # let the flusher run, as a busy server's loop would
            await log.flush()
            batched_rate = N / (time.perf_counter() - started)
            with tenant_scope(batched_tenant):  # audit rows are tenant-owned
                async with kit.database.session() as session:
                    written = await session.scalar(
                        select(func.count())
                        .select_from(AuditEvent)
                        .where(AuditEvent.tenant_id == batched_tenant)
                    )
            assert written == N, (written, N)
        finally:
            await kit.shutdown()
    return {
        "events": N,
        "baseline_events": BASELINE_N,
        "batched_per_s": batched_rate,
        "one_insert_per_event_per_s": baseline_rate,
        "ratio": batched_rate / baseline_rate,
    }


def run() -> dict[str, float]:
    results = asyncio.run(main())
    print(
        f"audit events per second, PostgreSQL ({results['events']} batched, {results['baseline_events']} single)"
    )
    line("one INSERT per event", results["one_insert_per_event_per_s"], "/s", ratio=1.0)
    line(
        "AuditLog (batched)",
        results["batched_per_s"],
        "/s",
        ratio=results["ratio"],
        note=target_text(">=", 20),
    )
    series = [
        figure("one INSERT per event", results["one_insert_per_event_per_s"], "/s"),
        figure("AuditLog batched", results["batched_per_s"], "/s"),
    ]
    head = headline("batched / one INSERT per event", results["ratio"], ">=", 20)
    print(f"  -> {write_result('audit', results, series=series, head=head)}")
    return results


if __name__ == "__main__":
    run()
