from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tenantkit import TenantKit
from tenantkit.observability import JSONFormatter
from tenantkit.observability.middleware import client_ip, trusted_matcher
from tests.helpers import assert_problem, serve


async def boom(request: Request) -> JSONResponse:
    raise RuntimeError("secret internals: password=hunter2")


async def echo_state(request: Request) -> JSONResponse:
    return JSONResponse({"request_id": request.state.request_id, "ip": request.state.client_ip})


def routes() -> list[Route]:
    return [Route("/boom", boom), Route("/items/{item_id}", echo_state)]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_request_id_is_kept_when_sane_and_replaced_otherwise(
    kit_factory: Callable[..., TenantKit],
) -> None:
    app = kit_factory().build_app(routes())
    async with serve(app) as client:
        kept = await client.get("/items/1", headers={"X-Request-ID": "abc.DEF_123-x"})
        assert kept.headers["x-request-id"] == "abc.DEF_123-x"
        assert kept.json()["request_id"] == "abc.DEF_123-x"
        for bad in ["has space", "x" * 129, "semi;colon", "ünï"]:
            replaced = await client.get("/items/1", headers={"X-Request-ID": bad.encode("utf-8")})
            assert replaced.headers["x-request-id"] != bad
            assert 1 <= len(replaced.headers["x-request-id"]) <= 128
        generated = await client.get("/items/1")
        assert len(generated.headers["x-request-id"]) == 32


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_every_error_is_problem_json_with_request_id(
    kit_factory: Callable[..., TenantKit], caplog: pytest.LogCaptureFixture
) -> None:
    app = kit_factory().build_app(routes())
    async with serve(app) as client:
        missing = await client.get("/nowhere")
        assert_problem(missing, 404)
        assert missing.headers["x-request-id"]
        wrong_method = await client.delete("/health")
        assert_problem(wrong_method, 405)
        with caplog.at_level(logging.ERROR, logger="tenantkit.errors"):
            crashed = await client.get("/boom")
        body = assert_problem(crashed, 500)
        assert "hunter2" not in crashed.text and "RuntimeError" not in crashed.text
        assert crashed.headers["x-request-id"]
        assert body["detail"] == "An unexpected error occurred."
    assert any("unhandled error" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_one_json_access_log_line_per_request(kit_factory: Callable[..., TenantKit]) -> None:
    app = kit_factory().build_app(routes())
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    access = logging.getLogger("tenantkit.access")
    async with serve(app) as client:
        access.addHandler(handler)
        previous = access.level
        access.setLevel(logging.INFO)
        try:
            await client.get("/items/42", headers={"X-Request-ID": "log-me"})
        finally:
            access.removeHandler(handler)
            access.setLevel(previous)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == "log-me"
    assert line["route"] == "/items/{item_id}"
    assert line["status"] == 200 and line["method"] == "GET"
    assert line["duration_ms"] >= 0
    assert line["client_ip"] == "203.0.113.7"


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    trusted = trusted_matcher(["10.0.0.0/8"])
    headers = [(b"x-forwarded-for", b"198.51.100.9, 10.0.0.2")]
    assert client_ip({"client": ("10.0.0.1", 1), "headers": headers}, trusted) == "198.51.100.9"
    # a client that is not a proxy cannot spoof its address
    assert client_ip({"client": ("203.0.113.5", 1), "headers": headers}, trusted) == "203.0.113.5"
    # a garbage hop stops the walk at the last trusted address
    bad = [(b"x-forwarded-for", b"not-an-ip")]
    assert client_ip({"client": ("10.0.0.1", 1), "headers": bad}, trusted) == "10.0.0.1"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_metrics_endpoint_counts_requests_by_route_template(
    kit_factory: Callable[..., TenantKit],
) -> None:
    app = kit_factory().build_app(routes())
    async with serve(app) as client:
        await client.get("/items/1")
        await client.get("/items/2")
        text = (await client.get("/metrics")).text
    assert 'tenantkit_http_requests_total{method="GET",route="/items/{item_id}",status="200"} 2.0' in text
