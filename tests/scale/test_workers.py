"""Many job worker processes behave as one: two ``tenantkit worker --workers 2`` run each job once."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from inventory_app.models import Product
from tenantkit import Settings, TenantKit
from tenantkit.admin import create_tenant
from tenantkit.context import TenantRef, tenant_context
from tests.jobs.worker_app import RECORD, SEEN_PREFIX, build_kit
from tests.scale.conftest import log_tail, started

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

JOBS = 24
WORKER = ("tenantkit.cli", "--app", "tests.jobs.worker_app:create_app", "worker", "--workers", "2")


@pytest.fixture
async def kit(deployment_env: dict[str, str]) -> AsyncIterator[TenantKit]:
    """A kit of the same deployment in this process: it queues jobs and reads what they wrote."""
    values = {
        k.removeprefix("TENANTKIT_").lower(): v
        for k, v in deployment_env.items()
        if k.startswith("TENANTKIT_")
    }
    values.pop("disable_plugin_autoload", None)
    kit = build_kit(Settings.load(**values), autoload_plugins=False)
    await kit.startup()
    try:
        yield kit
    finally:
        await kit.shutdown()


async def _seen(kit: TenantKit, tenant: TenantRef) -> dict[str, dict[str, Any]]:
    with tenant_context(tenant):
        async with kit.database.session() as session:
            rows = await session.execute(
                select(Product.sku, Product.description).where(Product.sku.startswith(SEEN_PREFIX))
            )
    return {sku.removeprefix(SEEN_PREFIX): json.loads(description) for sku, description in rows}


async def test_two_multi_process_workers_run_every_job_exactly_once(
    kit: TenantKit, deployment_env: dict[str, str], tmp_path: Path
) -> None:
    tenant = await create_tenant(kit, "Alpha")
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    with (
        started(deployment_env, logs[0], *WORKER) as first,
        started(deployment_env, logs[1], *WORKER) as second,
    ):
        markers = [f"job-{i}" for i in range(JOBS)]
        with tenant_context(tenant):
            for marker in markers:
                await kit.jobs.enqueue(RECORD, marker)

        deadline = asyncio.get_running_loop().time() + 40
        seen = await _seen(kit, tenant)
        while len(seen) < JOBS:
            assert first.poll() is None and second.poll() is None, [log_tail(log) for log in logs]
            assert asyncio.get_running_loop().time() < deadline, (
                sorted(seen),
                [log_tail(log) for log in logs],
            )
            await asyncio.sleep(0.2)
            seen = await _seen(kit, tenant)
        await asyncio.sleep(1.5)  # room for a duplicate delivery to show up as a failed run

        assert sorted(seen) == sorted(markers)
        assert all(record["tenant_id"] == str(tenant.id) for record in seen.values())
        # The supervisors only supervise: their children ran the jobs.
        assert not {record["pid"] for record in seen.values()} & {first.pid, second.pid}
        # A second run of a job would hit the unique SKU and be dead-lettered (one attempt).
        dead, _ = await kit.jobs.dead_letters()
        assert dead == [], [(d.task_name, d.error) for d in dead]

        # One SIGTERM each: every child finishes and the supervisors exit 0.
        for process in (first, second):
            process.send_signal(signal.SIGTERM)
        for process, log in zip((first, second), logs, strict=True):
            assert await asyncio.to_thread(process.wait, 40) == 0, log_tail(log)


def test_worker_processes_refuse_a_bad_app_before_starting_any(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTKIT_")}
    env.update({"TENANTKIT_ENV": "development", "TENANTKIT_DATA_DIR": str(tmp_path)})
    result = subprocess.run(
        [sys.executable, "-m", "tenantkit.cli", "--app", "no_such_module:create", "worker", "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "cannot load --app" in result.stderr
