"""The example inventory app: a user signs in through the test provider and uses the app."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from inventory_app.app import create_app, create_kit
from tenantkit import Settings
from tenantkit.mail import MemoryMailer
from tests.federation.conftest import MiniOP, MockOP, provider_settings, sign_in_mock
from tests.helpers import Api, serve


@pytest.fixture
async def example_api(
    settings_factory: Callable[..., Settings], mock_op: MockOP, mini_op: MiniOP
) -> AsyncIterator[Api]:
    kit = create_kit(
        settings_factory(oidc_providers=provider_settings(mock_op, mini_op)), mailer=MemoryMailer()
    )
    async with serve(create_app(kit), base_url="https://testserver") as client:
        yield Api(client, kit, MemoryMailer())
    await kit.shutdown()


async def test_sign_in_to_the_example_app_through_the_provider(example_api: Api, mock_op: MockOP) -> None:
    sub = "shop-" + uuid.uuid4().hex[:8]
    mock_op.set_user(sub, email=f"{sub}@example.com", email_verified=True, name="Shop " + sub)
    response = await sign_in_mock(example_api, sub)
    assert response.status_code == 200, response.text
    headers = Api.bearer(response.json())
    created = await example_api.client.post(
        "/products", json={"sku": "SKU-1", "name": "Widget", "price": "9.50"}, headers=headers
    )
    assert created.status_code == 201, created.text
    listed = await example_api.client.get("/products", headers=headers)
    assert [p["sku"] for p in listed.json()["items"]] == ["SKU-1"]
