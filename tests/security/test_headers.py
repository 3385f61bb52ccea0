"""Security headers on every response; HSTS only outside development; endpoint headers win."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tenantkit.security import DEFAULT_CSP, HSTS
from tests.helpers import assert_problem

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


async def test_every_response_carries_the_hardening_headers(served: Callable[..., Any]) -> None:
    app = await served()
    client = await app.client()
    for response in (await client.get("/ping"), await client.get("/nowhere")):
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
        assert headers["content-security-policy"] == DEFAULT_CSP
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["cross-origin-opener-policy"] == "same-origin"
        assert headers["strict-transport-security"] == HSTS
    assert_problem(await client.get("/nowhere"), 404)


async def test_no_hsts_in_development(served: Callable[..., Any]) -> None:
    app = await served(env="development")
    response = await (await app.client()).get("/ping")
    assert "strict-transport-security" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_headers_set_by_the_endpoint_are_kept(served: Callable[..., Any]) -> None:
    app = await served()
    response = await (await app.client()).get("/framed")
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert response.headers.get_list("content-security-policy") == ["sandbox"]
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_auth_responses_are_not_stored(served: Callable[..., Any]) -> None:
    app = await served()
    client = await app.client()
    response = await client.post("/auth/password-reset", json={"email": "nobody@example.com"})
    assert response.status_code == 202
    assert response.headers.get_list("cache-control") == ["no-store"]
    failed = await client.post(
        "/auth/login", json={"email": "nobody@example.com", "password": "wrong-password"}
    )
    assert failed.status_code == 401
    assert failed.headers["cache-control"] == "no-store"
    assert "no-store" not in (await client.get("/ping")).headers.get("cache-control", "")
