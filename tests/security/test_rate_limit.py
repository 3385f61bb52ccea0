"""Rate limits: per address on auth routes, per account on login, per user/tenant elsewhere, per route."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx

from tenantkit.security import RateLimiter, RateLimitResult, limit_headers, rate_key
from tenantkit.settings import RateLimit
from tenantkit.stores.memory import MemoryStore
from tests.conftest import ON_CLUSTER
from tests.helpers import assert_problem
from tests.security.conftest import register_and_login

WRONG = {"email": "nobody@example.com", "password": "wrong-password"}


def assert_limited(response: httpx.Response, policy: str) -> None:
    assert_problem(response, 429)
    retry = response.headers["retry-after"]
    assert retry.isdigit() and int(retry) >= 1
    assert f'"{policy}";' in response.headers["ratelimit-policy"]
    assert re.search(rf'"{policy}";r=0;t=\d+', response.headers["ratelimit"])


@ON_CLUSTER
async def test_auth_routes_are_limited_per_address_with_draft_headers(served: Callable[..., Any]) -> None:
    app = await served(rate_limit_auth="3/minute")
    client = await app.client()
    for remaining in (2, 1, 0):
        response = await client.post("/auth/login", json=WRONG)
        assert response.status_code == 401
        assert response.headers["ratelimit-policy"].startswith('"auth";q=3;w=60')
        assert re.match(rf'"auth";r={remaining};t=\d+', response.headers["ratelimit"])
    limited = await client.post("/auth/login", json=WRONG)
    assert_limited(limited, "auth")
    assert 1 <= int(limited.headers["retry-after"]) <= 20
    # Each auth path has its own budget; other routes use the API budget.
    assert (await client.post("/auth/password-reset", json={"email": "x@example.com"})).status_code == 202
    assert (await client.get("/ping")).headers["ratelimit-policy"].startswith('"api";')
    # Health and metrics are never limited or annotated.
    assert "ratelimit" not in (await client.get("/health")).headers


async def test_addresses_have_separate_budgets_and_forwarded_for_is_ignored_from_untrusted_peers(
    served: Callable[..., Any],
) -> None:
    app = await served(rate_limit_auth="2/minute")
    first = await app.client("198.51.100.1")
    for n in range(2):
        spoof = {"X-Forwarded-For": f"192.0.2.{n}"}
        assert (await first.post("/auth/login", json=WRONG, headers=spoof)).status_code == 401
    assert_limited(
        await first.post("/auth/login", json=WRONG, headers={"X-Forwarded-For": "192.0.2.99"}), "auth"
    )
    second = await app.client("198.51.100.2")
    other_account = {**WRONG, "email": "someone@example.com"}
    assert (await second.post("/auth/login", json=other_account)).status_code == 401


async def test_forwarded_for_counts_from_a_trusted_proxy(served: Callable[..., Any]) -> None:
    app = await served(rate_limit_auth="2/minute", trusted_proxies=["10.0.0.0/8"])
    proxy = await app.client("10.1.2.3")
    for _ in range(2):
        r = await proxy.post(
            "/auth/refresh", json={"refresh_token": "x"}, headers={"X-Forwarded-For": "192.0.2.1"}
        )
        assert r.status_code in (401, 422)
    assert_limited(
        await proxy.post(
            "/auth/refresh", json={"refresh_token": "x"}, headers={"X-Forwarded-For": "192.0.2.1"}
        ),
        "auth",
    )
    other = await proxy.post(
        "/auth/refresh", json={"refresh_token": "x"}, headers={"X-Forwarded-For": "192.0.2.2"}
    )
    assert other.status_code != 429


async def test_login_is_also_limited_per_account_across_addresses(served: Callable[..., Any]) -> None:
    app = await served(rate_limit_auth="3/minute", trusted_proxies=["10.0.0.0/8"])
    proxy = await app.client("10.9.9.9")
    for n in range(3):
        response = await proxy.post("/auth/login", json=WRONG, headers={"X-Forwarded-For": f"192.0.2.{n}"})
        assert response.status_code == 401
    rotated = await proxy.post(
        "/auth/login",
        json={**WRONG, "email": "NoBody@Example.com"},
        headers={"X-Forwarded-For": "192.0.2.50"},
    )
    assert_limited(rotated, "auth-account")
    other_account = await proxy.post(
        "/auth/login", json={**WRONG, "email": "else@example.com"}, headers={"X-Forwarded-For": "192.0.2.51"}
    )
    assert other_account.status_code == 401


async def test_api_budget_is_per_user(served: Callable[..., Any]) -> None:
    app = await served(rate_limit_api="3/minute")
    client = await app.client()
    alice = await register_and_login(client, "alice@example.com")
    bob = await register_and_login(client, "bob@example.com")
    for remaining in (2, 1, 0):
        response = await client.get("/auth/me", headers=alice)
        assert response.status_code == 200
        assert '"api";q=3;w=60' in response.headers["ratelimit-policy"]
        assert f'"api";r={remaining};' in response.headers["ratelimit"]
    assert_limited(await client.get("/auth/me", headers=alice), "api")
    # Same address, another user: its own budget.
    assert (await client.get("/auth/me", headers=bob)).status_code == 200


async def test_api_budget_is_also_per_tenant(served: Callable[..., Any]) -> None:
    app = await served(rate_limit_tenant="2/minute")
    client = await app.client()
    alice = await register_and_login(client, "alice@example.com")
    for _ in range(2):
        response = await client.get("/auth/me", headers=alice)
        assert response.status_code == 200
        assert '"tenant";q=2;w=60' in response.headers["ratelimit-policy"]
    assert_limited(await client.get("/auth/me", headers=alice), "tenant")


async def test_anonymous_requests_use_the_api_budget_per_address(served: Callable[..., Any]) -> None:
    app = await served(rate_limit_api="2/minute")
    client = await app.client()
    assert (await client.get("/ping")).status_code == 200
    assert (await client.get("/ping")).status_code == 200
    assert_limited(await client.get("/ping"), "api")
    assert (await (await app.client("198.51.100.77")).get("/ping")).status_code == 200


async def test_rate_limit_decorator(served: Callable[..., Any]) -> None:
    app = await served()
    client = await app.client()
    first = await client.get("/limited")
    assert first.status_code == 200
    assert '"limited";q=2;w=60' in first.headers["ratelimit-policy"]
    assert '"api";' in first.headers["ratelimit-policy"]
    assert (await client.get("/limited")).status_code == 200
    assert_limited(await client.get("/limited"), "limited")
    assert (await (await app.client("198.51.100.8")).get("/limited")).status_code == 200
    endpoint = next(r for r in app.app.routes if getattr(r, "path", None) == "/limited").endpoint
    assert endpoint.__tenantkit_rate_limit__ == {"limit": 2, "period": 60, "key": "ip", "policy": "limited"}


async def test_limiter_check_and_headers() -> None:
    limiter = RateLimiter(MemoryStore())
    rate = RateLimit.parse("2/10second")
    key = rate_key("user", "{u1}", "export")
    assert key == "{user:u1}:export"
    first = await limiter.check(key, rate, policy="export")
    assert (first.allowed, first.remaining, first.reset_seconds) == (True, 1, 5)
    await limiter.check(key, rate, policy="export")
    denied = await limiter.hit(key, rate, policy="export")
    assert not denied.allowed and denied.retry_after_seconds >= 1
    headers = limit_headers([first, denied])
    assert headers["RateLimit-Policy"] == '"export";q=2;w=10, "export";q=2;w=10'
    assert headers["Retry-After"] == str(denied.retry_after_seconds)
    assert RateLimitResult("p", 5, 60, True, 5, 0.0).reset_seconds == 0
