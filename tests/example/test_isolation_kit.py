"""The example app through tenantkit's own isolation kit: no route leaks across brands.

Run like a user would (``--tenantkit-app=inventory_app.app:create_app``), here
by overriding the factory fixture, on SQLite and on PostgreSQL + Redis. In live
mode (``TENANTKIT_TEST_BASE_URL``) the same check runs against the live server,
with the suite's ``example`` client and the routes of an app built on its settings.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
from starlette.applications import Starlette

from inventory_app.app import create_app
from tenantkit.testing import (  # noqa: F401  (the plugin's fixtures without -p tenantkit.testing)
    IsolationKit,
    TenantPair,
    tenantkit_app,
    tenantkit_client,
    tenantkit_isolation,
    tenantkit_tenants,
)
from tenantkit.testing.isolation import register_tenant
from tests.conftest import SECRET
from tests.example.conftest import Example


@pytest.fixture
def isolation(request: pytest.FixtureRequest, backend: str) -> IsolationKit:
    """The plugin's ``tenantkit_isolation``; in live mode the same check on the live server."""
    name = "live_isolation" if backend == "live" else "tenantkit_isolation"
    return cast("IsolationKit", request.getfixturevalue(name))


@pytest.fixture
async def live_isolation(example: Example) -> IsolationKit:
    """Tenants ``a`` and ``b`` registered on the live server, and the app's routes."""
    assert example.app is not None
    a, b = await register_tenant(example.client, "a"), await register_tenant(example.client, "b")
    return IsolationKit(example.app, example.client, TenantPair(a, b))


@pytest.fixture
def tenantkit_app_factory() -> Callable[[], Starlette]:
    return create_app


@pytest.fixture
def tenantkit_settings(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The suite's migrated databases (and Redis on PostgreSQL), once per backend."""
    settings = {
        "env": "test",
        "jwt_secret": SECRET,
        "bcrypt_rounds": "4",
        "data_dir": str(tmp_path / "data"),
        "log_level": "WARNING",
        "rate_limit_auth": "100000/minute",
        "rate_limit_api": "100000/minute",
        "rate_limit_tenant": "100000/minute",
        "database_url": request.getfixturevalue("sqlite_url"),
    }
    if backend == "postgres":
        settings["database_url"] = request.getfixturevalue("pg_url")
        settings["redis_url"] = request.getfixturevalue("redis_url")
        settings["redis_key_prefix"] = request.getfixturevalue("redis_prefix")
    return settings


async def test_no_route_of_the_example_app_leaks_across_brands(isolation: IsolationKit) -> None:
    # The webhook body the generator cannot guess (events must be a non-empty list).
    report = await isolation.check(
        bodies={"POST /webhooks": {"url": "https://hooks.example.com/in", "events": ["order.*"]}}
    )
    print(report.summary())

    report.assert_clean()
    # The check reached B's resources: products, orders, files, webhooks were created as B
    # and their item routes replayed as A with B's ids.
    for route in ("POST /products", "POST /orders", "POST /files/uploads", "POST /webhooks"):
        assert route in report.created, report.summary()
    for route in (
        "GET /products/{id}",
        "PATCH /products/{id}",
        "DELETE /products/{id}",
        "GET /orders/{id}",
        "GET /files/{id}",
        "DELETE /webhooks/{id}",
        "DELETE /users/invitations/{invitation_id}",
        "DELETE /auth/sessions/{session_id}",
    ):
        assert route in report.replayed and route not in report.untested, report.summary()
