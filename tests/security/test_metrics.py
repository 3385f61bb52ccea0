"""``/metrics`` exposes requests, latency, auth events, jobs, rate limiting and the database pool."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tenantkit.observability.metrics import JOB_OUTCOMES
from tests.security.conftest import register_and_login


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text ``text``."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    raise AssertionError(f"no sample {name}{labels} in /metrics")


async def test_metrics_cover_requests_auth_jobs_limits_and_pool(
    served: Callable[..., Any], backend: str
) -> None:
    app = await served(rate_limit_api="2/minute", lockout_threshold=2)
    client = await app.client()
    await register_and_login(client, "alice@example.com")
    for _ in range(2):
        await client.post("/auth/login", json={"email": "mallory@example.com", "password": "wrong-password"})
    for _ in range(3):
        await client.get("/ping")

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert sample(text, "tenantkit_http_requests_total", method="GET", route="/ping", status="200") == 2
    assert sample(text, "tenantkit_http_requests_total", method="GET", route="/ping", status="429") == 1
    assert (
        sample(text, "tenantkit_http_requests_total", method="POST", route="/auth/login", status="200") == 1
    )
    assert sample(text, "tenantkit_http_request_duration_seconds_count", method="GET", route="/ping") == 3
    assert (
        sample(text, "tenantkit_http_request_duration_seconds_bucket", method="GET", route="/ping", le="+Inf")
        == 3
    )
    assert sample(text, "tenantkit_logins_total") == 1
    assert sample(text, "tenantkit_login_failures_total") == 2
    assert sample(text, "tenantkit_lockouts_total") == 1
    assert sample(text, "tenantkit_token_reuse_detections_total") == 0
    assert sample(text, "tenantkit_rate_limited_total", policy="api") == 1
    for outcome in JOB_OUTCOMES:
        assert sample(text, "tenantkit_jobs_total", outcome=outcome) >= 0
    assert sample(text, "tenantkit_db_pool_connections_in_use") >= 0
    size = sample(text, "tenantkit_db_pool_size")
    if backend == "postgres":
        assert size == app.kit.settings.db_pool_size
        assert sample(text, "tenantkit_db_pool_connections_idle") >= 1
    else:
        assert size >= 0
    sample(text, "tenantkit_db_pool_overflow")


async def test_pool_gauge_counts_checked_out_connections(served: Callable[..., Any]) -> None:
    app = await served()
    client = await app.client()
    # Background loops (webhook delivery) may hold a connection for a moment too.
    async with app.kit.database.engine.connect(), app.kit.database.engine.connect():
        during = sample((await client.get("/metrics")).text, "tenantkit_db_pool_connections_in_use")
        assert during >= 2
    after = sample((await client.get("/metrics")).text, "tenantkit_db_pool_connections_in_use")
    assert after < during
