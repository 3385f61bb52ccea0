"""Refresh-token rotations per second on PostgreSQL against a raw asyncpg floor.

The floor does the least any rotation must: in one transaction, one
conditional ``UPDATE ... WHERE spent_at IS NULL RETURNING`` and one
``INSERT``, through asyncpg with prepared statements. tenantkit does the same
two statements (its UPDATE also checks session, user, membership and tenant,
and returns what the access token needs), plus signing the access token and
sealing the pair for the grace window. Target: ≥ 80 % of the floor.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench.common import figure, headline, line, postgres_database, scaled, target_text, write_result
from tenantkit import Settings, TenantKit
from tenantkit.db.migrate import upgrade
from tenantkit.mail import MemoryMailer

N = int(os.environ.get("TENANTKIT_BENCH_ROTATIONS", "0")) or scaled(1500, 150)


async def floor(dsn: str, session_id: uuid.UUID, n: int) -> float:
    connection = await asyncpg.connect(dsn)
    try:
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        await connection.execute(
            "INSERT INTO refresh_tokens (id, session_id, digest, created_at, expires_at) VALUES ($1,$2,$3,$4,$5)",
            uuid.uuid4(),
            session_id,
            hashlib.sha256(token.encode()).digest(),
            now,
            now + timedelta(days=7),
        )
        spend = await connection.prepare(
            "UPDATE refresh_tokens SET spent_at = $2, successor_id = $3 "
            "WHERE digest = $1 AND spent_at IS NULL AND expires_at > $2 RETURNING session_id"
        )
        mint = await connection.prepare(
            "INSERT INTO refresh_tokens (id, session_id, digest, created_at, expires_at) VALUES ($1,$2,$3,$4,$5)"
        )
        started = time.perf_counter()
        for _ in range(n):
            successor = secrets.token_urlsafe(32)
            successor_id = uuid.uuid4()
            now = datetime.now(UTC)
            async with connection.transaction():
                row = await spend.fetchrow(hashlib.sha256(token.encode()).digest(), now, successor_id)
                assert row is not None
                await mint.fetch(
                    successor_id,
                    row[0],
                    hashlib.sha256(successor.encode()).digest(),
                    now,
                    now + timedelta(days=7),
                )
            token = successor
        return n / (time.perf_counter() - started)
    finally:
        await connection.close()


async def main() -> dict[str, float]:
    async with postgres_database("rotation") as (dsn, url):
        settings = Settings.load(
            env="test",
            jwt_secret="bench-" + "x" * 40,
            bcrypt_rounds=4,
            database_url=url,
            data_dir=Path(tempfile.mkdtemp()),
            log_level="ERROR",
        )
        kit = TenantKit(settings, mailer=MemoryMailer(), autoload_plugins=False)
        await upgrade(kit.database)
        await kit.startup()
        try:
            await kit.accounts.register(
                email="bench@example.com", password="bench-password", tenant_name="Bench"
            )
            pair = await kit.sessions.login(
                email="bench@example.com", password="bench-password", tenant=None, ip=None, user_agent="bench"
            )
            token = pair.refresh_token
            for _ in range(50):  # warm up pools and caches
                token = (await kit.sessions.refresh(token, ip=None)).refresh_token
            started = time.perf_counter()
            for _ in range(N):
                token = (await kit.sessions.refresh(token, ip=None)).refresh_token
            tenantkit_rate = N / (time.perf_counter() - started)
            floor_rate = await floor(dsn, pair.session_id, N)
        finally:
            await kit.shutdown()
    return {
        "rotations": N,
        "tenantkit_per_s": tenantkit_rate,
        "asyncpg_floor_per_s": floor_rate,
        "ratio": tenantkit_rate / floor_rate,
    }


def run() -> dict[str, float]:
    results = asyncio.run(main())
    print(f"refresh rotations per second, PostgreSQL, one client, same run ({results['rotations']} each)")
    line("raw asyncpg floor (UPDATE + INSERT)", results["asyncpg_floor_per_s"], "/s", ratio=1.0)
    line(
        "tenantkit Sessions.refresh",
        results["tenantkit_per_s"],
        "/s",
        ratio=results["ratio"],
        note=target_text(">=", 0.8),
    )
    series = [
        figure("raw asyncpg floor", results["asyncpg_floor_per_s"], "/s"),
        figure("tenantkit refresh", results["tenantkit_per_s"], "/s"),
    ]
    head = headline("rotations / asyncpg floor", results["ratio"], ">=", 0.8)
    print(f"  -> {write_result('rotation', results, series=series, head=head)}")
    return results


if __name__ == "__main__":
    run()
