"""``TENANTKIT_METRICS_TOKEN`` protects ``GET /metrics`` with a bearer token."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import SecretStr

from tenantkit import ConfigurationError, Settings, TenantKit
from tests.helpers import assert_problem, serve

TOKEN = "scrape-" + "m" * 40


async def test_with_a_token_only_its_bearer_reads_the_metrics(
    kit_factory: Callable[..., TenantKit], settings_factory: Callable[..., Settings]
) -> None:
    kit = kit_factory(settings_factory(metrics_token=TOKEN))
    async with serve(kit.build_app()) as client:
        refused = {
            "none": {},
            "wrong": {"Authorization": "Bearer " + "x" * len(TOKEN)},
            "prefix": {"Authorization": f"Bearer {TOKEN[:-1]}"},
            "longer": {"Authorization": f"Bearer {TOKEN}x"},
            "basic": {"Authorization": f"Basic {TOKEN}"},
            "bare": {"Authorization": TOKEN},
            "jwt-shaped": {"Authorization": "Bearer a.b.c"},
        }
        for name, headers in refused.items():
            response = await client.get("/metrics", headers=headers)
            body = assert_problem(response, 401)
            assert response.headers["www-authenticate"].startswith("Bearer"), name
            assert "tenantkit_http_requests" not in response.text, name
            assert TOKEN not in response.text and TOKEN not in str(body), name

        ok = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200, ok.text
        assert ok.headers["content-type"].startswith("text/plain")
        assert "tenantkit_http_requests_total" in ok.text
        lower = await client.get("/metrics", headers={"Authorization": f"bearer  {TOKEN}"})
        assert lower.status_code == 200


async def test_without_a_token_the_endpoint_stays_open(kit_factory: Callable[..., TenantKit]) -> None:
    async with serve(kit_factory().build_app()) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert "tenantkit_http_requests_total" in response.text


def test_the_token_is_a_secret_of_at_least_32_bytes(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(metrics_token=TOKEN)
    assert isinstance(settings.metrics_token, SecretStr)
    assert TOKEN not in repr(settings)
    with pytest.raises(ConfigurationError, match="metrics_token"):
        settings_factory(metrics_token="short")
