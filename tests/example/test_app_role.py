"""The example app served as ``tenantkit_app``, the role row-level security binds.

Every test elsewhere connects as ``postgres`` (a superuser: RLS never applies).
Here the whole HTTP path runs under the policies: the ORM scoping and RLS must
agree, and every tenant-owned table (roles, invitations, audit events included)
must be reachable in its tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import text

from inventory_app.app import create_app
from tenantkit import TenantKit
from tenantkit.db.engine import Database
from tenantkit.db.rls import APP_ROLE
from tests.example.conftest import Example
from tests.helpers import serve

# in_process: it serves the app as another database role, a deployment of its own.
pytestmark = [pytest.mark.postgres, pytest.mark.in_process]


@pytest.fixture
def backend() -> str:
    return "postgres"


@pytest.fixture
async def as_app(pg_url: str, example_kit_factory: Callable[..., TenantKit]) -> AsyncIterator[Example]:
    scheme, rest = pg_url.split("://", 1)
    kit = example_kit_factory(database_url=f"{scheme}://{APP_ROLE}@{rest.split('@', 1)[1]}")
    async with serve(create_app(kit)) as client:
        yield Example(client, kit)


async def test_the_example_app_works_under_rls_as_the_app_role(as_app: Example, pg_url: str) -> None:
    api = as_app.client
    acme, globex = await as_app.brand("Acme"), await as_app.brand("Globex")
    product = await as_app.product(acme, sku="RLS-1")
    assert [p["id"] for p in (await api.get("/products", headers=acme.admin)).json()["items"]] == [
        product["id"]
    ]
    assert (await api.get("/products", headers=globex.admin)).json()["items"] == []
    assert (await api.get(f"/products/{product['id']}", headers=globex.admin)).status_code == 404

    created = await api.post(
        "/roles", json={"name": "auditor", "permissions": ["audit.read"]}, headers=acme.admin
    )
    assert created.status_code == 201, created.text
    assert "auditor" in {r["name"] for r in (await api.get("/roles", headers=acme.admin)).json()["items"]}
    assert "auditor" not in {
        r["name"] for r in (await api.get("/roles", headers=globex.admin)).json()["items"]
    }

    invite = await api.post(
        "/users/invitations", json={"email": "new@acme.example.com", "role": "auditor"}, headers=acme.admin
    )
    assert invite.status_code == 201, invite.text
    joined = await api.post(
        "/auth/register",
        json={
            "email": "new@acme.example.com",
            "password": "correct horse battery",
            "invite_token": invite.json()["invite_token"],
        },
    )
    assert joined.status_code == 201, joined.text
    auditor = await as_app.login("new@acme.example.com")
    me: dict[str, Any] = (await api.get("/auth/me", headers=auditor)).json()
    assert "audit.read" in me["permissions"]

    await as_app.kit.audit_log.flush()
    events = (await api.get("/audit", headers=auditor)).json()["items"]
    assert "invitation.created" in {e["action"] for e in events}
    owner = Database(pg_url)
    try:
        async with owner.engine.connect() as connection:
            tenants = set(
                (await connection.scalars(text("SELECT DISTINCT tenant_id FROM audit_events"))).all()
            )
    finally:
        await owner.dispose()
    assert uuid.UUID(acme.id) in tenants and uuid.UUID(globex.id) in tenants
