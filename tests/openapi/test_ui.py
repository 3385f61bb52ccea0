"""Swagger UI at /api-docs: self-hosted assets only, no inline script."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from tenantkit import TenantKit
from tests.helpers import assert_problem, serve


@pytest.fixture
async def client(kit_factory: Callable[..., TenantKit]) -> AsyncIterator[httpx.AsyncClient]:
    kit = kit_factory()
    app = kit.build_app(openapi={"title": "Docs <Test>", "version": "1"})
    async with serve(app) as http:
        yield http


async def test_page_references_only_same_origin_assets(client: httpx.AsyncClient) -> None:
    response = await client.get("/api-docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "Docs &lt;Test&gt;" in page  # the title is escaped
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";")[0]

    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts
    assert all('src="' in attrs and body.strip() == "" for attrs, body in scripts)
    assert "<style" not in page
    assert not re.search(r"\son[a-z]+\s*=", page)  # no inline event handlers either
    urls = re.findall(r'(?:src|href|data-openapi-url)="([^"]+)"', page)
    assert len(urls) >= 5
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        assert "://" not in url


async def test_assets_load_with_their_content_types(client: httpx.AsyncClient) -> None:
    page = (await client.get("/api-docs")).text
    expected = {
        ".js": "text/javascript",
        ".css": "text/css",
        ".png": "image/png",
        ".json": "application/json",
    }
    urls = re.findall(r'(?:src|href|data-openapi-url)="([^"]+)"', page)
    for url in urls:
        response = await client.get(url)
        assert response.status_code == 200, url
        suffix = url[url.rfind(".") :]
        assert response.headers["content-type"].startswith(expected[suffix]), url
        assert response.headers["x-content-type-options"] == "nosniff"
        assert len(response.content) > 100, url
    bundle = await client.get("/api-docs/assets/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.text
    assert "max-age" in bundle.headers["cache-control"]


async def test_initializer_reads_the_document_url_and_keeps_auth_working(client: httpx.AsyncClient) -> None:
    page = (await client.get("/api-docs")).text
    init_url = next(u for u in re.findall(r'src="([^"]+)"', page) if "init" in u)
    script = (await client.get(init_url)).text
    assert "data-openapi-url" in script
    assert "validatorUrl: null" in script  # no call to an outside validator
    spec_url = re.search(r'data-openapi-url="([^"]+)"', page)
    assert spec_url is not None
    legacy = (await client.get(spec_url.group(1))).json()
    assert legacy["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert legacy["paths"]["/auth/me"]["get"]["security"] == [{"bearerAuth": []}]


async def test_unknown_or_unlisted_assets_are_404(client: httpx.AsyncClient) -> None:
    for name in ("index.html", "swagger-initializer.js", "..%2F..%2Fpyproject.toml", "nope.js"):
        response = await client.get(f"/api-docs/assets/{name}")
        assert_problem(response, 404)


async def test_without_the_option_nothing_is_mounted(kit_factory: Callable[..., TenantKit]) -> None:
    kit = kit_factory()
    async with serve(kit.build_app()) as http:
        assert (await http.get("/openapi.json")).status_code == 404
        assert (await http.get("/api-docs")).status_code == 404
