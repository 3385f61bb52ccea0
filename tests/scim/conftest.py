"""SCIM tests: a served kit (``api``), a tenant ADMIN, and a SCIM token of their tenant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.helpers import Api

SCIM = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@dataclass
class Tenant:
    """A tenant with its ADMIN's bearer headers and a SCIM token."""

    id: str
    admin: dict[str, str]
    token: str
    token_id: str

    @property
    def scim(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": SCIM}


async def make_tenant(api: Api, email: str) -> Tenant:
    registered = await api.register(email)
    admin = api.bearer(await api.login(email))
    created = await api.client.post("/tenant/scim-tokens", json={"name": "okta"}, headers=admin)
    assert created.status_code == 201, created.text
    body = created.json()
    return Tenant(registered["tenant"]["id"], admin, body["token"], body["id"])


def assert_scim_error(response: httpx.Response, status: int, scim_type: str | None = None) -> dict[str, Any]:
    """Assert a SCIM error document (RFC 7644 §3.12) with ``status`` (and ``scimType``)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(SCIM)
    body: dict[str, Any] = response.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == str(status)
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    assert "Traceback" not in response.text
    return body


def user_body(email: str, **extra: Any) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": email, **extra}


def patch_body(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}


@pytest.fixture
async def tenant(api: Api) -> Tenant:
    return await make_tenant(api, "owner@example.com")
