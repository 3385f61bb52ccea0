"""Tenant suspension, lockouts and rate limits reach every server process (``test_servers``' deployment).

The same deployment as ``test_servers``: server A is ``serve --workers 2``,
server B another ``serve``, all three processes on one PostgreSQL database and
one Redis prefix, every request on a new connection. Here the API budget per
user is small, so a rate limit can be spent across the processes.

The rate-limit bound (docs/concepts/security.md): with P processes each allowed
a share S = max(1, ⌊share·limit⌋), at most ``limit + rate·d + P·S`` requests pass;
once the budget is spent, a process allows at most S more and refuses from its
next reconcile on (``TENANTKIT_RATE_LIMIT_SYNC_MS``, 100 ms, plus one round trip).
"""

from __future__ import annotations

import math
import subprocess
import sys
import time

import pytest

from tests.scale.conftest import PASSWORD, ROOT, ROUNDS, Deployment

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

LIMIT, SHARE, PROCESSES = 120, 0.05, 3  # per user per hour; A's two processes and B
S = max(1, math.floor(LIMIT * SHARE))  # 6


@pytest.fixture
def deployment_env(deployment_env: dict[str, str]) -> dict[str, str]:
    """The shared deployment with a small API budget per user (replenishing 1 per 30 s)."""
    return {
        **deployment_env,
        "TENANTKIT_RATE_LIMIT_API": f"{LIMIT}/hour",
        "TENANTKIT_RATE_LIMIT_LOCAL_SHARE": str(SHARE),
        "TENANTKIT_RATE_LIMIT_SYNC_MS": "100",
    }


def register(d: Deployment, email: str, tenant: str) -> dict[str, str]:
    response = d.call(
        d.a, "POST", "/auth/register", json={"email": email, "password": PASSWORD, "tenant_name": tenant}
    )
    assert response.status_code == 201, response.text
    return dict(response.json()["tenant"])


def test_a_tenant_suspension_reaches_every_process(
    deployment: Deployment, deployment_env: dict[str, str]
) -> None:
    d = deployment
    tenant = register(d, "owner@acme.example.com", "Acme")
    owner = d.login(d.b, "owner@acme.example.com")
    created = subprocess.run(
        [sys.executable, "-m", "tenantkit.cli", "create-superadmin", "root@example.com", "--password-stdin"],
        cwd=ROOT,
        env=deployment_env,
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    root = d.login(d.a, "root@example.com")
    d.everywhere("/products", owner, 200)  # every process has the tenant cached as active

    suspended = d.call(d.b, "PATCH", f"/admin/tenants/{tenant['id']}", root, json={"status": "suspended"})
    assert suspended.status_code == 200, suspended.text
    d.everywhere("/products", owner, 403)

    active = d.call(d.a, "PATCH", f"/admin/tenants/{tenant['id']}", root, json={"status": "active"})
    assert active.status_code == 200, active.text
    d.everywhere("/products", owner, 200)


def test_a_lockout_counts_failures_from_every_process_and_holds_on_each(deployment: Deployment) -> None:
    d = deployment
    register(d, "victim@acme.example.com", "Victim")
    wrong = {"email": "victim@acme.example.com", "password": "not the password"}
    # Five failures (the threshold), alternating between the servers: one shared count.
    statuses = [d.call((d.a, d.b)[n % 2], "POST", "/auth/login", json=wrong).status_code for n in range(5)]
    assert statuses == [401] * 5
    right = {"email": "victim@acme.example.com", "password": PASSWORD}
    for base in (d.a, d.b):
        refused = [d.call(base, "POST", "/auth/login", json=right).status_code for _ in range(4)]
        assert refused == [423] * 4, (base, refused)


def test_a_rate_limit_is_spent_across_processes_within_the_bound(deployment: Deployment) -> None:
    d = deployment
    register(d, "busy@acme.example.com", "Busy")
    token = d.login(d.b, "busy@acme.example.com")
    allowed = 0
    for n in range(LIMIT + PROCESSES * S + 20):
        status = d.call((d.a, d.b)[n % 2], "GET", "/auth/me", token).status_code
        assert status in (200, 429), status
        allowed += status == 200
    # Replenishment over the run (1 per 30 s) adds at most one or two.
    assert LIMIT - PROCESSES * S <= allowed <= LIMIT + PROCESSES * S + 2, allowed
    # Spent. A process that has not heard yet allows at most its share more, then refuses;
    # over the whole run the bound holds.
    time.sleep(0.5)
    after = {
        base: [d.call(base, "GET", "/auth/me", token).status_code for _ in range(PROCESSES * S + ROUNDS)]
        for base in (d.a, d.b)
    }
    late = sum(status == 200 for statuses in after.values() for status in statuses)
    assert late <= PROCESSES * S, after
    assert allowed + late <= LIMIT + PROCESSES * S + 2, (allowed, after)
    assert all(statuses.count(429) >= ROUNDS for statuses in after.values()), after
