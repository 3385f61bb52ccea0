"""The tamper-evident audit log: hash chains written by concurrent writers, checked by ``tenantkit audit``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tenantkit.audit import AuditLog
from tenantkit.audit.chain import GENESIS, row_hash
from tenantkit.db.engine import Database
from tenantkit.db.migrate import upgrade
from tenantkit.db.rls import APP_ROLE

TENANTS = [uuid.UUID(int=n) for n in (11, 22, 33, 44)]
PER_TENANT = 60  # per writer


def cli(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``tenantkit`` as a separate process on the database at ``url``."""
    env = {
        "TENANTKIT_ENV": "development",
        "TENANTKIT_DATA_DIR": str(tmp_path),
        "TENANTKIT_DATABASE_URL": url,
        "TENANTKIT_DISABLE_PLUGIN_AUTOLOAD": "1",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        [sys.executable, "-m", "tenantkit.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


async def write_chains(url: str, writers: int = 2) -> None:
    """``writers`` AuditLog instances (each its own engine, as separate processes) writing at once."""
    databases = [Database(url) for _ in range(writers)]
    logs = [AuditLog(db, batch_size=16, flush_ms=5) for db in databases]
    try:
        for log in logs:
            await log.start()
        for n in range(PER_TENANT):
            for w, log in enumerate(logs):
                for tenant in TENANTS:
                    log.record(
                        {"action": "test.event", "tenant_id": str(tenant), "data": {"writer": w, "n": n}}
                    )
            if n % 8 == 7:
                await asyncio.sleep(0.01)  # let both flushers run and contend for the heads
        for log in logs:
            await log.stop()
        assert all(log.written == PER_TENANT * len(TENANTS) and log.dropped == 0 for log in logs)
    finally:
        for db in databases:
            await db.dispose()


async def sql(url: str, statement: str, **params: Any) -> list[Any]:
    """Run SQL as the connecting role (a superuser in the tests: past row-level security)."""
    database = Database(url)
    try:
        async with database.engine.begin() as connection:
            result = await connection.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        await database.dispose()


async def row_at(url: str, tenant: uuid.UUID, seq: int) -> str:
    ((row_id,),) = await sql(
        url, "SELECT id FROM audit_events WHERE tenant_id = :t AND seq = :s", t=tenant, s=seq
    )
    return str(row_id)


def as_app_role(url: str) -> str:
    """``url`` connecting as ``tenantkit_app``, the role row-level security binds."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{APP_ROLE}@{rest.split('@', 1)[1]}"


@pytest.fixture
async def chained(pg_url: str) -> str:
    """A PostgreSQL database whose chains were written by two writers connected as the app role."""
    await write_chains(as_app_role(pg_url))
    return pg_url


@pytest.mark.postgres
async def test_concurrent_writers_build_one_unbroken_chain_per_tenant(chained: str, tmp_path: Path) -> None:
    rows = await sql(
        chained,
        "SELECT tenant_id, count(*), min(seq), max(seq), count(DISTINCT seq) FROM audit_events "
        "GROUP BY tenant_id ORDER BY tenant_id",
    )
    expected = 2 * PER_TENANT
    assert [tuple(r) for r in rows] == [(t, expected, 1, expected, expected) for t in TENANTS]
    heads = await sql(chained, "SELECT tenant_id, seq FROM audit_heads ORDER BY tenant_id")
    assert [tuple(h) for h in heads] == [(t, expected) for t in TENANTS]
    # both writers' events are interleaved inside each chain (they really contended)
    writers = await sql(
        chained,
        "SELECT data->>'writer' FROM audit_events WHERE tenant_id = :t ORDER BY seq",
        t=TENANTS[0],
    )
    assert len({w for (w,) in writers[: PER_TENANT + 8]}) == 2

    # as the app role: verification reads across tenants through the cross-tenant role
    run = cli(tmp_path, as_app_role(chained), "audit", "verify")
    assert run.returncode == 0, run.stdout + run.stderr
    assert (
        run.stdout.strip() == f"audit chain OK: {len(TENANTS) * expected} row(s) in {len(TENANTS)} tenant(s)"
    )


TAMPERING = {
    # name: (SQL on TENANTS[1]'s chain, seq of the row named, words of the reason)
    "edit": (
        "UPDATE audit_events SET data = '{\"writer\": 9}' WHERE tenant_id = :t AND seq = 5",
        5,
        "edited",
    ),
    "edit-actor": (
        "UPDATE audit_events SET actor_id = '00000000-0000-0000-0000-00000000beef' WHERE tenant_id = :t AND seq = 7",
        7,
        "edited",
    ),
    "delete": ("DELETE FROM audit_events WHERE tenant_id = :t AND seq = 9", 10, "seq 9 missing"),
    "delete-last": (
        f"DELETE FROM audit_events WHERE tenant_id = :t AND seq = {2 * PER_TENANT}",
        None,
        "head",
    ),
    "swap": (
        "UPDATE audit_events SET seq = CASE seq WHEN 3 THEN -4 ELSE -3 END WHERE tenant_id = :t AND seq IN (3, 4);"
        "UPDATE audit_events SET seq = -seq WHERE tenant_id = :t AND seq < 0",
        3,
        "moved",
    ),
}


@pytest.mark.postgres
@pytest.mark.parametrize("kind", sorted(TAMPERING))
async def test_a_tampered_row_fails_verify_and_is_named(chained: str, tmp_path: Path, kind: str) -> None:
    statement, seq, reason = TAMPERING[kind]
    tenant = TENANTS[1]
    named = None if seq is None else await row_at(chained, tenant, seq if kind != "swap" else 4)
    for part in statement.split(";"):
        await sql(chained, part, t=tenant)

    run = cli(tmp_path, chained, "audit", "verify")
    assert run.returncode == 1, run.stdout + run.stderr
    (line,) = run.stdout.splitlines()  # only the tampered tenant, its first bad row
    assert line.startswith(f"audit chain BROKEN: tenant {tenant} row ")
    if named is not None:  # the row by its id and seq (after a swap, the row that now holds seq 3)
        assert f"row {named} seq {seq}:" in line, line
    assert reason in line, line
    assert "verification failed" in run.stderr

    if kind != "edit":
        return
    # --tenant limits the check: another tenant's chain is fine, this one is not
    other = cli(tmp_path, chained, "audit", "verify", "--tenant", str(TENANTS[2]))
    assert other.returncode == 0, other.stdout + other.stderr
    assert other.stdout.strip() == f"audit chain OK: {2 * PER_TENANT} row(s) in tenant {TENANTS[2]}"
    this = cli(tmp_path, chained, "audit", "verify", "--tenant", str(tenant))
    assert this.returncode == 1 and this.stdout.splitlines() == [line]


@pytest.mark.postgres
async def test_a_rewritten_chain_passes_alone_and_fails_against_published_heads(
    chained: str, tmp_path: Path
) -> None:
    heads = cli(tmp_path, chained, "audit", "head")
    assert heads.returncode == 0, heads.stderr
    published = [json.loads(line) for line in heads.stdout.splitlines()]
    assert [(h["tenant_id"], h["seq"]) for h in published] == [(str(t), 2 * PER_TENANT) for t in TENANTS]
    anchors = tmp_path / "anchors.jsonl"
    anchors.write_text(heads.stdout)

    # Someone with write access rewrites a row and recomputes the rest of the chain and its head.
    tenant = TENANTS[3]
    columns = "tenant_id, id, seq, prev_hash, action, actor_id, target, ip, request_id, data, created_at"
    rows = [
        dict(r._mapping)
        for r in await sql(
            chained, f"SELECT {columns} FROM audit_events WHERE tenant_id = :t ORDER BY seq", t=tenant
        )
    ]
    prev = GENESIS
    rows[0]["data"] = {"writer": "nobody"}
    for row in rows:
        row["prev_hash"] = prev
        prev = row_hash(row)
        await sql(
            chained,
            "UPDATE audit_events SET data = :d, prev_hash = :p, hash = :h WHERE tenant_id = :t AND id = :i",
            d=json.dumps(row["data"]),
            p=row["prev_hash"],
            h=prev,
            t=tenant,
            i=row["id"],
        )
    await sql(chained, "UPDATE audit_heads SET hash = :h WHERE tenant_id = :t", h=prev, t=tenant)

    alone = cli(tmp_path, chained, "audit", "verify")
    assert alone.returncode == 0, alone.stdout  # internally consistent: only an outside anchor tells
    checked = cli(tmp_path, chained, "audit", "verify", "--anchors", str(anchors))
    assert checked.returncode == 1
    assert f"tenant {tenant} row {rows[-1]['id']} seq {2 * PER_TENANT}: " in checked.stdout
    assert "published anchor" in checked.stdout
    assert "4 published anchor(s)" in checked.stderr

    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    refused = cli(tmp_path, chained, "audit", "verify", "--anchors", str(bad))
    assert refused.returncode == 2 and "not a head line" in refused.stderr


def test_an_unknown_tenant_or_an_unmigrated_database_is_a_clear_error(
    sqlite_url: str, tmp_path: Path
) -> None:
    run = cli(tmp_path, sqlite_url, "audit", "verify", "--tenant", "no-such-slug")
    assert run.returncode == 2 and "unknown tenant 'no-such-slug'" in run.stderr
    empty = f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}"
    run = cli(tmp_path, empty, "audit", "verify")
    assert run.returncode == 2 and "tenantkit db upgrade" in run.stderr and "Traceback" not in run.stderr


async def test_sqlite_chains_verify_and_an_edit_is_caught(sqlite_url: str, tmp_path: Path) -> None:
    await write_chains(sqlite_url)
    run = cli(tmp_path, sqlite_url, "audit", "verify")
    assert run.returncode == 0, run.stdout + run.stderr
    # SQLite keeps UUIDs as 32 hex digits
    await sql(
        sqlite_url, "UPDATE audit_events SET target = 'x' WHERE tenant_id = :t AND seq = 2", t=TENANTS[0].hex
    )
    run = cli(tmp_path, sqlite_url, "audit", "verify")
    assert run.returncode == 1 and f"tenant {TENANTS[0]} row " in run.stdout and "seq 2: " in run.stdout


async def test_the_migration_chains_rows_written_before_it(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite3'}"
    database = Database(url)
    try:
        await upgrade(database, revision="tk0006")
        tenant = uuid.uuid4()
        for n in range(5):
            await sql(
                url,
                "INSERT INTO audit_events (tenant_id, id, action, data, created_at) "
                "VALUES (:t, :i, 'old.event', :d, :c)",
                t=tenant.hex,
                i=uuid.uuid4().hex,
                d=json.dumps({"n": n, "k": [1, 2.5, None]}),
                c=f"2026-01-0{n + 1} 10:00:00.{n:06d}",
            )
        await upgrade(database)
    finally:
        await database.dispose()
    seqs = await sql(
        url, "SELECT seq FROM audit_events WHERE tenant_id = :t ORDER BY created_at", t=tenant.hex
    )
    assert [s for (s,) in seqs] == [1, 2, 3, 4, 5]
    run = cli(tmp_path, url, "audit", "verify")
    assert run.returncode == 0 and "5 row(s) in 1 tenant(s)" in run.stdout, run.stdout + run.stderr

    log = AuditLog(Database(url))  # new rows continue the migrated chain
    log.record({"action": "new.event", "tenant_id": str(tenant)})
    await log.stop()
    await log.database.dispose()
    run = cli(tmp_path, url, "audit", "verify", "--tenant", str(tenant))
    assert run.returncode == 0 and "6 row(s)" in run.stdout, run.stdout + run.stderr


async def test_audit_items_carry_seq_and_hash(api: Any) -> None:
    await api.register("chain@example.com")
    admin = api.bearer(await api.login("chain@example.com"))
    items = (await api.client.get("/audit", headers=admin)).json()["items"]
    assert sorted(item["seq"] for item in items) == list(range(1, len(items) + 1))
    assert all(len(item["hash"]) == 64 for item in items)


async def test_data_that_is_not_plain_json_is_stored_as_it_reads_back_and_verifies(sqlite_url: str) -> None:
    from tenantkit.audit.chain import verify_chain

    database = Database(sqlite_url)
    try:
        log = AuditLog(database)
        tenant = uuid.uuid4()
        odd = {"pair": (1, 2), 7: "int key", "nan": float("nan"), "id": uuid.UUID(int=5), "f": 0.1}
        log.record({"action": "odd.data", "tenant_id": str(tenant), "data": odd})
        await log.stop()
        report = await verify_chain(database, tenant)
        assert report.ok and report.rows == 1, report.problems
        (stored,) = await sql(sqlite_url, "SELECT data FROM audit_events WHERE tenant_id = :t", t=tenant.hex)
        assert json.loads(stored[0]) == {
            "pair": [1, 2],
            "7": "int key",
            "nan": "NaN",
            "id": str(uuid.UUID(int=5)),
            "f": 0.1,
        }
    finally:
        await database.dispose()
