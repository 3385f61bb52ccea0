"""The console's routes over HTTP (no browser): policy headers, files, settings and the panel hook."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from tenantkit import Settings, TenantKit, hookimpl
from tenantkit.console import CONSOLE_CSP, STATIC_DIRECTORY, console_routes
from tenantkit.errors import ConfigurationError
from tests.conftest import SECRET
from tests.helpers import serve

STRICT = {
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
}


def _settings(sqlite_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    return Settings.load(
        env="test",
        jwt_secret=SECRET,
        bcrypt_rounds=4,
        data_dir=tmp_path / "data",
        database_url=sqlite_url,
        log_level="WARNING",
        **overrides,
    )


class _Inline(HTMLParser):
    """Collects what a strict policy would refuse: inline scripts, style elements and attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script":
            self._in_script = True
            if "src" not in names:
                self.refused.append("inline <script>")
            self.scripts.append(dict(attrs).get("src") or "")
        if tag == "style":
            self.refused.append("<style>")
        if "style" in names or any(name.startswith("on") for name in names):
            self.refused.append(f"{tag} with style/on* attribute")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.refused.append("script body")


async def test_every_console_response_carries_the_strict_policy(sqlite_url: str, tmp_path: Path) -> None:
    kit = TenantKit(_settings(sqlite_url, tmp_path), autoload_plugins=False)
    async with serve(kit.build_app(openapi=True)) as client:
        page = await client.get("/console")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert set(page.headers["content-security-policy"].split("; ")) == STRICT
        parser = _Inline()
        parser.feed(page.text)
        assert parser.refused == []
        assert parser.scripts == ["/console/assets/console.js"]
        assert "https://" not in page.text and "http://" not in page.text

        for name in ("console.js", "api.js", "dom.js", "panels.js", "console.css"):
            asset = await client.get(f"/console/assets/{name}")
            assert asset.status_code == 200, name
            assert asset.headers["content-security-policy"] == CONSOLE_CSP
            expected = "text/css" if name.endswith(".css") else "text/javascript"
            assert asset.headers["content-type"].startswith(expected)
        listing = await client.get("/console/assets/panels.json")
        assert listing.json() == []
        assert listing.headers["content-security-policy"] == CONSOLE_CSP

        # Only the packaged files: no traversal, no other names.
        for bad in ("nope.js", "..%2F__init__.py", "index.html%00.js", "routes.py"):
            missing = await client.get(f"/console/assets/{bad}")
            assert missing.status_code == 404, bad
            assert missing.headers["content-type"].startswith("application/problem+json")
        assert (await client.get("/console/assets/panels/nope.js")).status_code == 404

        document = (await client.get("/openapi.json")).json()
        assert "/console" in document["paths"]
        assert not any(path.startswith("/console/") for path in document["paths"])


def test_the_scripts_keep_tokens_out_of_storage_and_styles_out_of_attributes() -> None:
    for path in STATIC_DIRECTORY.glob("*.js"):
        source = path.read_text()
        for forbidden in (
            "localStorage",
            "sessionStorage",
            "document.cookie",
            "innerHTML",
            "eval(",
            ".style.",
        ):
            assert forbidden not in source, f"{path.name} uses {forbidden}"
        assert not re.search(r"""setAttribute\(\s*["']style""", source), path.name
        assert not re.search(r"""\bstyle:\s""", source), path.name
    api = (STATIC_DIRECTORY / "api.js").read_text()
    # The refresh call sends no body: the cookie is the only carrier of the refresh token.
    assert 'send("POST", "/auth/refresh", undefined' in api
    assert "refresh_token" not in re.sub(r"//.*", "", api)


async def test_the_console_path_moves_or_switches_it_off(sqlite_url: str, tmp_path: Path) -> None:
    moved = TenantKit(_settings(sqlite_url, tmp_path, console_path="/admin/console"), autoload_plugins=False)
    async with serve(moved.build_app()) as client:
        assert (await client.get("/console")).status_code == 404
        page = await client.get("/admin/console")
        assert page.status_code == 200
        assert 'data-base="/admin/console"' in page.text
        assert (await client.get("/admin/console/assets/console.js")).status_code == 200
    off = TenantKit(_settings(sqlite_url, tmp_path, console_path=""), autoload_plugins=False)
    async with serve(off.build_app()) as client:
        assert (await client.get("/console")).status_code == 404
        assert (await client.get("/console/assets/console.js")).status_code == 404


@pytest.mark.parametrize("path", ["console", "/console/", "/con sole", "//evil.example"])
def test_a_malformed_console_path_refuses_to_start(path: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="console_path"):
        Settings.load(env="test", jwt_secret=SECRET, data_dir=tmp_path, console_path=path)


async def test_console_routes_mount_in_any_app_and_escape_the_root_path(tmp_path: Path) -> None:
    app = Starlette(routes=console_routes("/ops", title="Ops <console>"))
    hostile = '/t/"><img src=x onerror=alert(1)>'
    transport = httpx.ASGITransport(app=app, root_path=hostile)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        page = await client.get(f"{hostile}/ops")
    assert page.status_code == 200
    assert "<img" not in page.text and "onerror=alert" not in page.text
    assert "Ops &lt;console&gt;" in page.text
    assert 'data-base="/t/%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E/ops"' in page.text
    assert page.headers["content-security-policy"] == CONSOLE_CSP


class _Panels:
    def __init__(self, panels: list[dict[str, Any]]) -> None:
        self.panels = panels

    @hookimpl
    def tenantkit_console_panels(self) -> list[dict[str, Any]]:
        return self.panels


async def test_plugin_panels_are_served_same_origin(sqlite_url: str, tmp_path: Path) -> None:
    script = tmp_path / "panel.js"
    script.write_text("export function render(container) { container.textContent = 'hi'; }\n")
    panels = [{"id": "reports", "title": "Reports", "script": str(script), "permission": "users.read"}]
    kit = TenantKit(_settings(sqlite_url, tmp_path), autoload_plugins=False, plugins=[_Panels(panels)])
    async with serve(kit.build_app()) as client:
        listing = await client.get("/console/assets/panels.json")
        assert listing.json() == [{"id": "reports", "title": "Reports", "permission": "users.read"}]
        module = await client.get("/console/assets/panels/reports.js")
        assert module.status_code == 200
        assert module.headers["content-type"].startswith("text/javascript")
        assert module.headers["content-security-policy"] == CONSOLE_CSP
        assert "container.textContent" in module.text


@pytest.mark.parametrize(
    ("panel", "message"),
    [
        ({"id": "../x", "title": "X"}, "must match"),
        ({"id": "x", "title": ""}, "needs a title"),
        ({"id": "x", "title": "X", "script": "/nonexistent/panel.js"}, "no such script"),
    ],
)
def test_a_malformed_panel_refuses_to_start(
    panel: dict[str, Any], message: str, sqlite_url: str, tmp_path: Path
) -> None:
    kit = TenantKit(_settings(sqlite_url, tmp_path), autoload_plugins=False, plugins=[_Panels([panel])])
    with pytest.raises(ConfigurationError, match=message):
        kit.build_app()


def test_two_panels_with_one_id_refuse_to_start(sqlite_url: str, tmp_path: Path) -> None:
    script = tmp_path / "panel.js"
    script.write_text("export function render() {}\n")
    twice = [{"id": "a", "title": "A", "script": str(script)}] * 2
    kit = TenantKit(_settings(sqlite_url, tmp_path), autoload_plugins=False, plugins=[_Panels(twice)])
    with pytest.raises(ConfigurationError, match="two console panels"):
        kit.build_app()


async def test_the_documented_own_app_mount(sqlite_url: str, tmp_path: Path) -> None:
    """docs/console.md: the kit's copy off, the console mounted at /ops next to the API."""
    kit = TenantKit(_settings(sqlite_url, tmp_path, console_path=""), autoload_plugins=False)
    app = Starlette(
        routes=[*kit.routes, *console_routes("/ops", title="Acme operations")],
        middleware=kit.middleware,
        exception_handlers=kit.exception_handlers,
        lifespan=kit.lifespan,
    )
    async with serve(app) as client:
        assert (await client.get("/console")).status_code == 404
        page = await client.get("/ops")
        assert page.status_code == 200 and "<title>Acme operations</title>" in page.text
        assert page.headers["content-security-policy"] == CONSOLE_CSP
        assert (await client.get("/ops/assets/api.js")).status_code == 200
        assert (await client.get("/health")).status_code == 200
