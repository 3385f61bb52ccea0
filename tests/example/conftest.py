"""Fixtures for the example inventory app: the served app on both backends and two brands."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from inventory_app.app import create_app, create_kit
from tenantkit import Settings, TenantKit
from tenantkit.admin import create_user
from tenantkit.context import TenantRef
from tests.helpers import serve

PASSWORD = "correct horse battery"


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
    """The served inventory app, its kit and a client."""

    client: httpx.AsyncClient
    kit: TenantKit

    async def login(self, email: str, password: str = PASSWORD) -> dict[str, str]:
        response = await self.client.post("/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    async def brand(self, name: str) -> Brand:
        slug = name.lower()
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


@pytest.fixture
def example_kit_factory(settings_factory: Callable[..., Settings]) -> Callable[..., TenantKit]:
    """Build the app's kit on the current backend (plugins from entry points off)."""

    def make(**overrides: Any) -> TenantKit:
        return create_kit(settings_factory(**overrides), autoload_plugins=False)

    return make


@pytest.fixture
async def example(example_kit_factory: Callable[..., TenantKit]) -> AsyncIterator[Example]:
    """The inventory app served in process (its lifespan runs; the kit shuts down after)."""
    kit = example_kit_factory()
    async with serve(create_app(kit)) as client:
        yield Example(client, kit)


@pytest.fixture
async def acme(example: Example) -> Brand:
    return await example.brand("Acme")


@pytest.fixture
async def globex(example: Example) -> Brand:
    return await example.brand("Globex")
