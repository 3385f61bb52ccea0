"""Fixtures for the example inventory app: the served app on both backends and two brands.

**Live mode.** With ``TENANTKIT_TEST_BASE_URL`` set (e.g. ``http://127.0.0.1:8000``)
the suite speaks HTTP to that running server instead of serving the app in
process. The server's own ``TENANTKIT_*`` settings must be in the environment
too (database URL, Redis or Redis Cluster, key prefix, JWT secret, pepper): the
fixtures build a kit from them to seed data the way the in-process suite does
(``create_user``) and to read the database directly (the ledger). Every test
then runs once (``backend`` is ``"live"``), brands get unique names (the
database is shared by the whole run), and tests marked ``in_process`` are
deselected: they need this process's app or kit, or servers of their own.
``tests/scale/test_example_suite_on_cluster.py`` runs it against
``inventory-app serve --workers 2`` on a Redis Cluster.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from inventory_app.app import create_app, create_kit
from tenantkit import Settings, TenantKit
from tenantkit.admin import create_user
from tenantkit.context import TenantRef
from tests.helpers import serve

PASSWORD = "correct horse battery"

#: The running server the suite speaks to in live mode (``None``: in process).
LIVE_URL = os.environ.get("TENANTKIT_TEST_BASE_URL") or None
IN_PROCESS = "in_process"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{IN_PROCESS}: needs the app or kit in the test process, or servers of its own "
        "(deselected when tests/example runs against TENANTKIT_TEST_BASE_URL)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In live mode, deselect this directory's ``in_process`` tests."""
    if not LIVE_URL:
        return
    here = os.path.dirname(__file__)
    dropped = [i for i in items if str(i.path).startswith(here) and i.get_closest_marker(IN_PROCESS)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]


@dataclass
class Brand:
    """A brand (tenant) with an ADMIN and a USER, each logged in."""

    id: str
    slug: str
    admin: dict[str, str]
    user: dict[str, str]
    emails: dict[str, str] = field(default_factory=dict)


@dataclass
class Example:
    """The served inventory app, its kit and a client (of a live server in live mode)."""

    client: httpx.AsyncClient
    kit: TenantKit
    #: The app object (in live mode one built from the same settings, not served: for its routes).
    app: Starlette | None = None

    async def login(self, email: str, password: str = PASSWORD) -> dict[str, str]:
        response = await self.client.post("/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    async def brand(self, name: str) -> Brand:
        if LIVE_URL:  # one database for the whole run: names (and so emails) must not repeat
            name = f"{name} {uuid.uuid4().hex[:10]}"
        slug = name.lower().replace(" ", "-")
        admin_email, user_email = f"admin@{slug}.example.com", f"user@{slug}.example.com"
        response = await self.client.post(
            "/auth/register", json={"email": admin_email, "password": PASSWORD, "tenant_name": name}
        )
        assert response.status_code == 201, response.text
        tenant = response.json()["tenant"]
        ref = TenantRef(id=uuid.UUID(tenant["id"]), slug=tenant["slug"], name=name)
        await create_user(self.kit, user_email, PASSWORD, tenant=ref, role="USER")
        return Brand(
            id=tenant["id"],
            slug=tenant["slug"],
            admin=await self.login(admin_email),
            user=await self.login(user_email),
            emails={"admin": admin_email, "user": user_email},
        )

    async def product(self, brand: Brand, **fields: Any) -> dict[str, Any]:
        body = {"sku": "SKU-1", "name": "Widget", "price": "19.99", **fields}
        response = await self.client.post("/products", json=body, headers=brand.admin)
        assert response.status_code == 201, response.text
        return dict(response.json())


@pytest.fixture(params=["live"] if LIVE_URL else ["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """SQLite + memory store and PostgreSQL + Redis; in live mode only ``"live"``: the server's."""
    return str(request.param)


@pytest.fixture
def example_kit_factory(request: pytest.FixtureRequest, backend: str) -> Callable[..., TenantKit]:
    """Build the app's kit on the current backend (plugins from entry points off).

    In live mode the settings come from the environment: the live server's.
    """
    if backend == "live":

        def make(**overrides: Any) -> TenantKit:
            return create_kit(Settings.load(**overrides), autoload_plugins=False)

        return make
    settings_factory: Callable[..., Settings] = request.getfixturevalue("settings_factory")

    def make_local(**overrides: Any) -> TenantKit:
        return create_kit(settings_factory(**overrides), autoload_plugins=False)

    return make_local


@pytest.fixture
async def example(example_kit_factory: Callable[..., TenantKit], backend: str) -> AsyncIterator[Example]:
    """The inventory app served in process (its lifespan runs; the kit shuts down after).

    In live mode: a client of ``TENANTKIT_TEST_BASE_URL`` and a started kit on the server's settings.
    """
    kit = example_kit_factory()
    app = create_app(kit)
    if backend != "live":
        async with serve(app) as client:
            yield Example(client, kit, app)
        return
    await kit.startup()
    try:
        async with httpx.AsyncClient(base_url=str(LIVE_URL), timeout=30, trust_env=False) as client:
            yield Example(client, kit, app)
    finally:
        await kit.shutdown()


@pytest.fixture
async def acme(example: Example) -> Brand:
    return await example.brand("Acme")


@pytest.fixture
async def globex(example: Example) -> Brand:
    return await example.brand("Globex")
