"""Schemathesis against the served example app: its document is its contract.

Every operation of ``/openapi.json`` gets a few generated requests as the
brand's ADMIN; no answer may be a 5xx, and each must use a documented status,
the documented content type and match the documented body schema.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from inventory_app.app import create_app, create_kit
from tenantkit import Settings
from tests.conftest import free_port

pytestmark = pytest.mark.slow

#: Operations that would end the test's own session.
SKIP = {("POST", "/auth/logout"), ("POST", "/auth/logout-all")}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 12


@pytest.fixture
def base_url(settings_factory: Callable[..., Settings]) -> Iterator[str]:
    """The example app served by uvicorn on a loopback port, in a thread."""
    kit = create_kit(settings_factory(rate_limit_api="1000000/minute"), autoload_plugins=False)
    port = free_port()
    config = uvicorn.Config(create_app(kit), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


def admin_headers(base_url: str) -> dict[str, str]:
    with httpx.Client(base_url=base_url) as client:
        email, password = "admin@acme.example.com", "demo-password"
        registered = client.post(
            "/auth/register", json={"email": email, "password": password, "tenant_name": "Acme"}
        )
        assert registered.status_code == 201, registered.text
        tokens = client.post("/auth/login", json={"email": email, "password": password}).json()
        # The tenant header is pinned: random values would only test tenant resolution.
        headers = {"Authorization": f"Bearer {tokens['access_token']}", "X-Tenant-ID": "acme"}
        product = client.post(
            "/products",
            json={"sku": "TSHIRT-BLK", "name": "Black T-shirt", "price": "19.99"},
            headers=headers,
        )
        assert product.status_code == 201, product.text
        return headers


def test_example_app_honours_its_document(base_url: str) -> None:
    headers = admin_headers(base_url)
    document = httpx.get(f"{base_url}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    failures: dict[str, str] = {}
    statuses: collections.Counter[tuple[str, int]] = collections.Counter()
    seen = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP:
            continue
        seen += 1

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            response = case.call(base_url=base_url, headers=headers, timeout=10)
            statuses[(f"{case.method} {case.path}", response.status_code)] += 1
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises a FailureGroup
            failures[f"{operation.method.upper()} {operation.path}"] = str(exc)[:2000]
    if os.environ.get("TENANTKIT_CONTRACT_REPORT"):
        print("\n".join(f"{k} {v}: {n}" for (k, v), n in sorted(statuses.items())))
    assert seen > 40
    assert failures == {}, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    succeeded = {name for (name, status), _ in statuses.items() if status < 300}
    assert len(succeeded) >= 12, sorted(statuses.items())  # not everything is refused
