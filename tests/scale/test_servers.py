"""Many server processes behave as one: ``inventory-app serve --workers 2`` beside a second ``serve``.

Server A is ``serve --workers 2`` (two processes on one port; every request
opens a new connection, so either may answer), server B a separate ``serve``
on another port. All share this test's PostgreSQL database and Redis prefix.
A change made through one process is seen on the very next request by every
process, whichever answers.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.scale.conftest import log_tail, started, stop, wait_healthy

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

PASSWORD = "correct horse battery"
ROUNDS = 8  # requests per server for every check: both of A's processes answer some


class Deployment:
    """Clients of server A (``--workers 2``) and server B, without keep-alive."""

    def __init__(self, a: str, b: str) -> None:
        self.a, self.b = a, b
        self.http = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=15)

    def call(self, base: str, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, base + path, headers=headers, **kw)

    def everywhere(self, path: str, token: str, expected: int) -> None:
        """GET ``path`` ROUNDS times on each server: every answer is ``expected``."""
        for base in (self.a, self.b):
            statuses = [self.call(base, "GET", path, token).status_code for _ in range(ROUNDS)]
            assert statuses == [expected] * ROUNDS, (base, path, statuses)

    def login(self, base: str, email: str) -> str:
        response = self.call(base, "POST", "/auth/login", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


@pytest.fixture
def deployment(deployment_env: dict[str, str], tmp_path: Path) -> Iterator[Deployment]:
    port_a, port_b = free_port(), free_port()
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    serve = ("inventory_app.cli", "serve", "--host", "127.0.0.1")
    with (
        started(deployment_env, log_a, *serve, "--port", str(port_a), "--workers", "2") as a,
        started(deployment_env, log_b, *serve, "--port", str(port_b), "--no-migrate") as b,
    ):
        base_a, base_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        wait_healthy(base_a, a, log_a)
        wait_healthy(base_b, b, log_b)
        found = Deployment(base_a, base_b)
        try:
            yield found
        finally:
            found.http.close()
        # Both stop cleanly on SIGTERM (one uvicorn process re-raises the signal it shut down on).
        assert stop(a) in (0, -signal.SIGTERM), log_tail(log_a)
        assert stop(b) in (0, -signal.SIGTERM), log_tail(log_b)


def test_logout_role_change_and_removal_reach_every_process(deployment: Deployment) -> None:
    d = deployment
    registered = d.call(
        d.a,
        "POST",
        "/auth/register",
        json={"email": "owner@example.com", "password": PASSWORD, "tenant_name": "Acme"},
    )
    assert registered.status_code == 201, registered.text
    slug = registered.json()["tenant"]["slug"]
    owner = d.login(d.b, "owner@example.com")

    invited = d.call(
        d.a, "POST", "/users/invitations", owner, json={"email": "member@example.com", "role": "ADMIN"}
    )
    assert invited.status_code == 201, invited.text
    joined = d.call(
        d.b,
        "POST",
        "/auth/register",
        json={
            "email": "member@example.com",
            "password": PASSWORD,
            "invite_token": invited.json()["invite_token"],
        },
        headers={"X-Tenant-ID": slug},
    )
    assert joined.status_code == 201, joined.text
    member_id = joined.json()["user"]["id"]
    member = d.login(d.a, "member@example.com")
    d.everywhere("/users", member, 200)  # an ADMIN lists the members

    # A role change through B: the next request on any process sees USER.
    changed = d.call(d.b, "PATCH", f"/users/{member_id}/role", owner, json={"role": "USER"})
    assert changed.status_code == 200, changed.text
    d.everywhere("/users", member, 403)
    d.everywhere("/products", member, 200)
    assert d.call(d.a, "GET", "/auth/me", member).json()["role"] == "USER"

    # A logout through A: that session's token is refused by every process; the other session lives.
    second = d.login(d.b, "member@example.com")
    d.everywhere("/auth/me", second, 200)
    assert d.call(d.a, "POST", "/auth/logout", second).status_code == 204
    d.everywhere("/auth/me", second, 401)
    d.everywhere("/auth/me", member, 200)

    # A removal through A: the member's sessions in the tenant end everywhere.
    assert d.call(d.a, "DELETE", f"/users/{member_id}", owner).status_code == 204
    d.everywhere("/products", member, 401)
    d.everywhere("/auth/me", owner, 200)
