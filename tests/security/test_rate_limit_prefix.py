"""Limits apply to the route, whatever tenant path prefix reached it (issue 17)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers import assert_problem
from tests.security.conftest import register_and_login

WRONG = {"email": "nobody@example.com", "password": "wrong-password"}
PATH_RESOLVERS = {"tenant_resolvers": "path,header,token"}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_login_through_the_tenant_prefix_counts_against_the_same_address_budget(
    served: Callable[..., Any],
) -> None:
    app = await served(rate_limit_auth="6/minute", **PATH_RESOLVERS)
    setup = await app.client("198.51.100.50")
    headers = await register_and_login(setup, "owner@prefix.example.com")
    slug = (await setup.get("/auth/me", headers=headers)).json()["tenant"]["slug"]
    client = await app.client("198.51.100.9")
    answers = []
    for n in range(8):
        path = f"/t/{slug}/auth/login" if n % 2 == 0 else "/auth/login"
        answers.append((await client.post(path, json=WRONG)).status_code)
    # Six attempts are allowed in all, alternating prefix and plain path; the seventh is refused.
    assert answers[:6].count(429) == 0, answers
    assert answers[6:] == [429, 429], answers
    limited = await client.post(f"/t/{slug}/auth/login", json=WRONG)
    assert_problem(limited, 429)
    assert '"auth";' in limited.headers["ratelimit-policy"]


async def test_plain_path_alone_is_refused_at_the_same_count(served: Callable[..., Any]) -> None:
    app = await served(rate_limit_auth="6/minute", **PATH_RESOLVERS)
    client = await app.client("198.51.100.10")
    answers = [(await client.post("/auth/login", json=WRONG)).status_code for _ in range(8)]
    assert answers[6:] == [429, 429] and 429 not in answers[:6], answers


async def test_per_user_budget_is_shared_through_the_prefix(served: Callable[..., Any]) -> None:
    app = await served(rate_limit_api="5/minute", **PATH_RESOLVERS)
    client = await app.client("198.51.100.11")
    headers = await register_and_login(client, "limits@prefix.example.com")
    me = (await client.get("/auth/me", headers=headers)).json()
    slug = me["tenant"]["slug"]
    answers = []
    for n in range(7):
        path = f"/t/{slug}/auth/me" if n % 2 == 0 else "/auth/me"
        answers.append((await client.get(path, headers=headers)).status_code)
    assert 429 in answers, answers
    assert answers.index(429) <= 5, answers
    assert all(status == 200 for status in answers[: answers.index(429)]), answers


async def test_health_through_the_prefix_is_not_counted(served: Callable[..., Any]) -> None:
    app = await served(rate_limit_api="2/minute", **PATH_RESOLVERS)
    client = await app.client("198.51.100.12")
    headers = await register_and_login(client, "health@prefix.example.com")
    slug = (await client.get("/auth/me", headers=headers)).json()["tenant"]["slug"]
    response = await client.get(f"/t/{slug}/health")
    assert "ratelimit" not in response.headers
