"""CORS from ``cors_origins`` (off when empty) and the ``Host`` allowlist from ``allowed_hosts``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers import assert_problem

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

ORIGIN = "https://app.example.com"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type, x-tenant-id",
}


async def test_preflight_from_an_allowed_origin_is_answered(served: Callable[..., Any]) -> None:
    app = await served(cors_origins=[ORIGIN])
    client = await app.client()
    response = await client.options("/auth/login", headers=PREFLIGHT)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]

    simple = await client.get("/ping", headers={"Origin": ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    exposed = {h.strip().lower() for h in simple.headers["access-control-expose-headers"].split(",")}
    assert {"x-request-id", "retry-after", "ratelimit", "ratelimit-policy"} <= exposed


async def test_preflight_from_another_origin_is_refused_as_problem_json(served: Callable[..., Any]) -> None:
    app = await served(cors_origins=[ORIGIN])
    client = await app.client()
    response = await client.options("/auth/login", headers={**PREFLIGHT, "Origin": "https://evil.example"})
    body = assert_problem(response, 400)
    assert "origin" in str(body["detail"])
    assert "access-control-allow-origin" not in response.headers
    simple = await client.get("/ping", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


async def test_cors_is_off_without_origins(served: Callable[..., Any]) -> None:
    app = await served()
    response = await (await app.client()).get("/ping", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in response.headers


async def test_untrusted_host_is_400_problem_json(served: Callable[..., Any]) -> None:
    app = await served(allowed_hosts=["api.example.com", "*.tenants.example.com"])
    good = await app.client(base_url="https://api.example.com")
    assert (await good.get("/ping")).status_code == 200
    sub = await app.client(base_url="https://acme.tenants.example.com:8443")
    assert (await sub.get("/ping")).status_code == 200
    evil = await app.client(base_url="https://evil.example")
    response = await evil.get("/ping")
    assert_problem(response, 400)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "x-request-id" in response.headers


async def test_any_host_by_default(served: Callable[..., Any]) -> None:
    app = await served()
    client = await app.client(base_url="https://whatever.invalid")
    assert (await client.get("/ping")).status_code == 200
