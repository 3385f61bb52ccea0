"""Swagger UI at /api-docs: self-hosted assets only, no inline script."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Callable
from html.parser import HTMLParser
from urllib.parse import quote

import httpx
import pytest

from tenantkit import Settings, TenantKit
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


HOSTILE_SLUGS = [
    '"><script>alert(1)<\\script>',
    "x\"><meta http-equiv=refresh content='0;url=https:evil.example'>",
    "'><img src=x onerror=alert(1)>",
    "a b&c<d>e",
    "https:evil.example",
]
PAGE_TAGS = [
    "html",
    "head",
    "meta",
    "meta",
    "title",
    "link",
    "link",
    "link",
    "body",
    "div",
    "script",
    "script",
]


class Tags(HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def parse(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(page)
    return parser.tags


@pytest.fixture
async def path_client(
    kit_factory: Callable[..., TenantKit], settings_factory: Callable[..., Settings]
) -> AsyncIterator[httpx.AsyncClient]:
    kit = kit_factory(settings_factory(tenant_resolvers="path,header,token"))
    async with serve(kit.build_app(openapi={"title": "Docs", "version": "1"})) as http:
        yield http


@pytest.mark.parametrize("slug", HOSTILE_SLUGS)
async def test_the_tenant_slug_is_never_reflected_unescaped(
    path_client: httpx.AsyncClient, slug: str
) -> None:
    response = await path_client.get(f"/t/{quote(slug, safe='')}/api-docs")
    assert response.status_code == 200, response.text
    page = response.text
    tags = parse(page)
    assert [tag for tag, _ in tags] == PAGE_TAGS  # the slug added no element
    assert not any("http-equiv" in attrs for _, attrs in tags)
    assert not any(name.startswith("on") for _, attrs in tags for name in attrs)
    assert slug not in page and slug not in html.unescape(page)
    urls = [
        value
        for _, attrs in tags
        for name, value in attrs.items()
        if name in ("src", "href", "data-openapi-url") and value is not None
    ]
    assert len(urls) >= 5
    for url in urls:
        assert url.startswith("/t/") and not url.startswith("//"), url
        assert not re.search(r"[\"'<>\s\\]", url), url
        assert httpx.URL(f"https://api.example.com{url}").host == "api.example.com"
    # The encoded URLs still lead to this tenant's assets and document.
    for url in urls:
        if url.endswith((".css", ".json")):
            assert (await path_client.get(url)).status_code == 200, url


async def test_a_scheme_relative_path_is_no_off_site_url(path_client: httpx.AsyncClient) -> None:
    for path in ("/t//evil.example/api-docs", "/t/%2F%2Fevil.example/api-docs", "//evil.example/api-docs"):
        response = await path_client.get(path)
        assert response.status_code in (200, 404), path
        assert "location" not in response.headers, path
        for _, attrs in parse(response.text):
            for name in ("src", "href", "data-openapi-url"):
                url = attrs.get(name)
                assert url is None or (url.startswith("/") and not url.startswith("//")), (path, url)
