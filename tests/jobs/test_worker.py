"""A job queued in a tenant's request runs in a separate ``tenantkit worker`` over Redis, in that tenant."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inventory_app.models import Product
from tenantkit import Settings, TenantKit
from tenantkit.admin import create_tenant
from tenantkit.context import TenantRef, tenant_context
from tenantkit.rbac.decorators import requires_permissions
from tests.conftest import SECRET
from tests.helpers import serve
from tests.jobs.worker_app import RECORD, SEEN_PREFIX, build_kit

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


@pytest.fixture(params=["redis", "cluster"])
def job_redis(request: pytest.FixtureRequest) -> dict[str, str]:
    """The Redis settings the jobs travel on: the shared Redis, or the private Redis Cluster."""
    if request.param == "cluster":
        nodes = request.getfixturevalue("redis_cluster").nodes
        return {"redis_cluster_nodes": nodes, "redis_key_prefix": f"tkc:{uuid.uuid4().hex[:12]}:"}
    return {
        "redis_url": request.getfixturevalue("redis_url"),
        "redis_key_prefix": request.getfixturevalue("redis_prefix"),
    }


def _settings(pg_url: str, job_redis: dict[str, str], data_dir: Path) -> dict[str, Any]:
    return {
        "env": "test",
        "jwt_secret": SECRET,
        "bcrypt_rounds": 4,
        "data_dir": data_dir,
        "log_level": "WARNING",
        "rate_limit_auth": "10000/minute",
        "database_url": pg_url,
        **job_redis,
    }


@pytest.fixture
async def worker_process(
    pg_url: str, job_redis: dict[str, str], tmp_path: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``tenantkit --app tests.jobs.worker_app:create_app worker`` in its own process."""
    process = await start_worker(_settings(pg_url, job_redis, tmp_path / "worker"), tmp_path / "worker.log")
    try:
        yield process
    finally:
        await stop_worker(process)


async def start_worker(values: dict[str, Any], log_path: Path) -> asyncio.subprocess.Process:
    """``tenantkit --app tests.jobs.worker_app:create_app worker`` in its own process, with ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTKIT_")}
    env.update({f"TENANTKIT_{k.upper()}": str(v) for k, v in values.items()})
    env["TENANTKIT_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    log = log_path.open("ab")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tenantkit.cli",
            "--app",
            "tests.jobs.worker_app:create_app",
            "worker",
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
    finally:
        log.close()


async def stop_worker(process: asyncio.subprocess.Process) -> int:
    """SIGTERM (then kill after 20 s); the exit code."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode


async def _seen(kit: TenantKit, tenant: TenantRef, marker: str) -> dict[str, Any] | None:
    with tenant_context(tenant):
        async with kit.database.session() as session:
            description = await session.scalar(
                select(Product.description).where(Product.sku == SEEN_PREFIX + marker)
            )
    return None if description is None else dict(json.loads(description))


async def test_job_queued_in_a_request_runs_in_a_separate_worker_scoped_to_its_tenant(
    pg_url: str,
    job_redis: dict[str, str],
    tmp_path: Path,
    worker_process: asyncio.subprocess.Process,
) -> None:
    kit = build_kit(Settings.load(**_settings(pg_url, job_redis, tmp_path / "app")), autoload_plugins=False)
    assert not kit.jobs.in_process  # Redis: this process only queues
    if "redis_cluster_nodes" in job_redis:  # the store and the broker are on the cluster
        assert type(kit.jobs.broker).__name__ == "RecoveringStreamClusterBroker"

    @requires_permissions("products.read")
    async def start_report(request: Request) -> Response:
        job_id = await kit.jobs.enqueue(RECORD, request.path_params["marker"])
        return JSONResponse({"job_id": job_id}, status_code=202)

    app = kit.build_app(routes=[Route("/reports/{marker}", start_report, methods=["POST"])])
    async with serve(app, base_url="https://testserver") as client:
        registered = await client.post(
            "/auth/register", json={"email": "a@example.com", "password": PASSWORD, "tenant_name": "Alpha"}
        )
        assert registered.status_code == 201, registered.text
        tenant_a = await kit.directory.get(uuid.UUID(registered.json()["tenant"]["id"]))
        assert tenant_a is not None
        tenant_b = await create_tenant(kit, "Beta")
        for tenant, count in ((tenant_a, 2), (tenant_b, 3)):
            with tenant_context(tenant):
                async with kit.database.session() as session, session.begin():
                    session.add_all(
                        Product(sku=f"P-{i}", name=f"{tenant.slug} {i}", price=Decimal("1.00"))
                        for i in range(count)
                    )
        login = await client.post("/auth/login", json={"email": "a@example.com", "password": PASSWORD})
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]

        marker = uuid.uuid4().hex[:12]
        request_id = f"req-{marker}"
        response = await client.post(
            f"/reports/{marker}",
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": request_id},
        )
        assert response.status_code == 202, response.text
        assert response.json()["job_id"]

        seen = None
        deadline = asyncio.get_running_loop().time() + 30
        while seen is None and worker_process.returncode is None:
            seen = await _seen(kit, tenant_a, marker)
            if seen is None:
                assert asyncio.get_running_loop().time() < deadline, _log(tmp_path)
                await asyncio.sleep(0.1)
        assert seen is not None, f"the worker exited ({worker_process.returncode}): {_log(tmp_path)}"

        assert seen == {
            "tenant_id": str(tenant_a.id),
            "slug": tenant_a.slug,
            "request_id": request_id,
            "visible_products": 2,  # A's two, none of B's three
            "pid": worker_process.pid,  # the worker ran it, not this process
        }
        assert await _seen(kit, tenant_b, marker) is None  # written in A's scope only
        assert await kit.jobs.worker.alive() == 1  # its heartbeat, written and read on the same Redis

    worker_process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(worker_process.wait(), 20) == 0, _log(tmp_path)


def _log(tmp_path: Path) -> str:
    path = tmp_path / "worker.log"
    return path.read_text(errors="replace")[-4000:] if path.exists() else ""
