"""scim2-tester (an independent SCIM 2.0 compliance checker) against ``/scim/v2`` over real HTTP.

The kit is served by uvicorn on a loopback port; scim2-client speaks to it with
httpx. Every check must pass. Checks of features the service provider
configuration declares unsupported are reported ``SKIPPED`` by the checker
itself (bulk, sort, ETags, password change, searching several resource types
at once with ``POST /.search``); none is excluded by hand.

The checker fills every attribute the models describe with random values; a
``userName`` is the account's email here and a group's ``displayName`` a role
name, so the client's models give examples of both (the served schema cannot
carry examples).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import httpx
import pytest
from pydantic import Field
from scim2_client import BaseSyncSCIMClient
from scim2_models import Mutability, Required, ScimProvider, Uniqueness
from scim2_tester import Status, check_server

from tenantkit import Settings, TenantKit
from tenantkit.scim.models import ScimGroup, ScimUser, resource_types
from tests.conftest import serve_in_thread

_EMAILS = [f"user-{uuid.uuid4().hex[:12]}@example.com" for _ in range(2000)]
_ROLES = [f"team_{uuid.uuid4().hex[:12]}" for _ in range(2000)]


class HttpxSCIMClient(BaseSyncSCIMClient):
    """scim2-client over an ``httpx.Client`` (its own engine targets the ``httpx2`` fork)."""

    def __init__(self, client: httpx.Client, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client

    def _stays_under_base_url(self, endpoint: str) -> bool:
        base = self.client.base_url
        url = self.client.build_request("GET", endpoint).url
        return (
            url.scheme == base.scheme
            and url.host == base.host
            and url.port == base.port
            and (url.raw_path.startswith(base.raw_path))
        )

    def _parse_json(self, response: Any) -> Any:
        return response.json()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, url, **kwargs)


class CheckedUser(ScimUser):
    """The served ``User`` model, with email addresses as ``userName`` examples."""

    user_name: Annotated[str | None, Uniqueness.server, Required.true, Mutability.immutable] = Field(
        None, examples=_EMAILS
    )


class CheckedGroup(ScimGroup):
    """The served ``Group`` model, with role names as ``displayName`` examples."""

    display_name: Annotated[str | None, Required.true, Mutability.immutable] = Field(None, examples=_ROLES)


@pytest.fixture
def served(settings_factory: Callable[..., Settings]) -> Iterator[str]:
    """The kit served by uvicorn on a loopback port, in a thread."""
    kit = TenantKit(
        settings_factory(rate_limit_api="1000000/minute", rate_limit_auth="1000000/minute"),
        autoload_plugins=False,
    )
    with serve_in_thread(kit.build_app()) as url:
        yield url


def _scim_token(base_url: str) -> str:
    with httpx.Client(base_url=base_url) as client:
        email, password = "admin@acme.example.com", "correct horse battery"
        registered = client.post(
            "/auth/register", json={"email": email, "password": password, "tenant_name": "Acme"}
        )
        assert registered.status_code == 201, registered.text
        login = client.post("/auth/login", json={"email": email, "password": password})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = client.post("/tenant/scim-tokens", json={"name": "checker"}, headers=headers)
        assert created.status_code == 201, created.text
        return str(created.json()["token"])


def test_scim2_tester_finds_no_failure(served: str) -> None:
    token = _scim_token(served)
    http = httpx.Client(base_url=f"{served}/scim/v2", headers={"Authorization": f"Bearer {token}"})
    provider = ScimProvider(models=[CheckedUser, CheckedGroup], resource_types=resource_types())
    client = HttpxSCIMClient(http, provider=provider)
    with http:
        results = check_server(client)
    failed = [r for r in results if r.status in (Status.ERROR, Status.CRITICAL)]
    assert not failed, "\n".join(f"{r.resource_type} {r.title}: {r.reason}" for r in failed)
    print(
        "\n".join(
            f"{r.status.name} {r.resource_type} {r.title}: {(r.reason or '')[:90]}"
            for r in results
            if r.status != Status.SUCCESS
        )
    )
    passed = {r.title for r in results if r.status == Status.SUCCESS}
    # The checker really ran the resource checks, not only discovery.
    assert {"object_creation", "object_query", "object_replacement", "object_deletion"} <= passed
    assert {"check_add_attribute", "check_remove_attribute", "check_replace_attribute"} <= passed
