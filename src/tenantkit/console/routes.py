"""``GET /console``: the tenant administration console, served from the package.

The page, its ES modules and its style sheet live in ``tenantkit/console/static``
and are served by the app itself (no CDN, no build step). Every console response
carries :data:`CONSOLE_CSP`: no inline script or style, no other origin. The
only request input that reaches the page is the ASGI ``root_path`` (the tenant
prefix ``/t/{slug}``), percent-encoded and HTML-escaped into ``data-`` attributes.

Plugins add panels with the ``tenantkit_console_panels`` hook; each panel's
module is served at ``{path}/assets/panels/{id}.js`` (same origin, so the policy holds)
and the page imports it and calls its exported ``render(container, api)``.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from tenantkit.errors import ConfigurationError, NotFoundError
from tenantkit.openapi import describe

__all__ = ["CONSOLE_CSP", "STATIC_DIRECTORY", "ConsolePanel", "console_routes", "panels_from_hook"]

CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""The Content-Security-Policy of every console response."""

#: Where the page, modules and style sheet live (shipped in the wheel).
STATIC_DIRECTORY = Path(__file__).parent / "static"

_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}
_PANEL_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_HEADERS = {"Content-Security-Policy": CONSOLE_CSP, "Cache-Control": "no-cache"}


@dataclass(frozen=True)
class ConsolePanel:
    """A panel a plugin adds to the console.

    Args:
        id: ``[a-z0-9][a-z0-9_-]*``; the module is served at ``{console}/assets/panels/{id}.js``.
        title: The panel's heading and navigation label.
        script: A JavaScript module file on disk exporting ``render(container, api)``.
        permission: Show the panel only to holders of this permission code.
    """

    id: str
    title: str
    script: Path
    permission: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ConsolePanel:
        """A panel from the hook's ``{"id", "title", "script", "permission"?}``.

        Raises:
            ConfigurationError: a malformed id, a missing title or a missing file.
        """
        panel_id = str(data.get("id", ""))
        if not _PANEL_ID.match(panel_id):
            raise ConfigurationError(f"console panel id {panel_id!r} must match {_PANEL_ID.pattern}")
        title = str(data.get("title") or "").strip()
        if not title:
            raise ConfigurationError(f"console panel {panel_id!r} needs a title")
        script = Path(str(data.get("script", "")))
        if not script.is_file():
            raise ConfigurationError(f"console panel {panel_id!r}: no such script file {str(script)!r}")
        permission = data.get("permission")
        return cls(panel_id, title, script, str(permission) if permission else None)


def panels_from_hook(results: Iterable[Any]) -> list[ConsolePanel]:
    """Flatten the ``tenantkit_console_panels`` hook's results (lists of mappings) into panels.

    Raises:
        ConfigurationError: a malformed panel, or two panels with one id.
    """
    panels: list[ConsolePanel] = []
    for result in results:
        for item in result or ():
            panel = item if isinstance(item, ConsolePanel) else ConsolePanel.from_mapping(item)
            if any(p.id == panel.id for p in panels):
                raise ConfigurationError(f"two console panels are named {panel.id!r}")
            panels.append(panel)
    return panels


def _url_path(root_path: str, path: str) -> str:
    """``root_path + path`` percent-encoded, one leading slash (never ``//host``)."""
    return "/" + quote(f"{root_path}{path}", safe="/").lstrip("/")


def _assets() -> dict[str, str]:
    """The files served under ``{path}/assets/``: name → media type."""
    return {
        entry.name: _MEDIA_TYPES[entry.suffix]
        for entry in STATIC_DIRECTORY.iterdir()
        if entry.is_file() and entry.suffix in _MEDIA_TYPES
    }


def console_routes(
    path: str = "/console",
    *,
    panels: Iterable[ConsolePanel | Mapping[str, Any]] = (),
    title: str = "Administration console",
) -> list[BaseRoute]:
    """The console's routes, to mount in any Starlette app served with tenantkit's API.

    Args:
        path: Where the page is served (``/console``); its files live under
            ``{path}/assets/`` and plugin panels under ``{path}/assets/panels/``.
        panels: Extra panels (see :class:`ConsolePanel`).
        title: The page title.

    Returns:
        ``[GET path, GET {path}/assets/panels.json, GET {path}/assets/{name},
        GET {path}/assets/panels/{id}.js]``.

    Example:
        ```python
        app = Starlette(routes=[*kit.routes, *console_routes("/admin")], ...)
        ```
    """
    if not path.startswith("/") or path.endswith("/"):
        raise ConfigurationError("the console path must start with '/' and not end with one")
    chosen = [p if isinstance(p, ConsolePanel) else ConsolePanel.from_mapping(p) for p in panels]
    by_id = {panel.id: panel for panel in chosen}
    if len(by_id) != len(chosen):
        raise ConfigurationError("two console panels share an id")
    assets = _assets()
    template = (STATIC_DIRECTORY / "index.html").read_text(encoding="utf-8")
    listing = json.dumps(
        [{"id": p.id, "title": p.title, "permission": p.permission} for p in chosen],
        separators=(",", ":"),
    ).encode()

    @describe(
        summary="The administration console (HTML)", tags=["console"], public=True, media_type="text/html"
    )
    async def page(request: Request) -> Response:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        base = html.escape(_url_path(root, path), quote=True)
        api = html.escape(_url_path(root, "").rstrip("/"), quote=True)
        body = (
            template.replace("{{base}}", base)
            .replace("{{api}}", api)
            .replace("{{title}}", html.escape(title))
        )
        return HTMLResponse(body, headers=_HEADERS)

    @describe(summary="The console's plugin panels", tags=["console"], public=True)
    async def panel_list(request: Request) -> Response:
        return Response(listing, media_type="application/json", headers=_HEADERS)

    @describe(summary="A console file", tags=["console"], public=True, media_type="text/javascript")
    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        media_type = assets.get(name)
        if media_type is None:
            raise NotFoundError("No such console file.")
        return FileResponse(STATIC_DIRECTORY / name, media_type=media_type, headers=_HEADERS)

    @describe(summary="A plugin panel's module", tags=["console"], public=True, media_type="text/javascript")
    async def panel_script(request: Request) -> Response:
        panel = by_id.get(request.path_params["panel"])
        if panel is None:
            raise NotFoundError("No such console panel.")
        return FileResponse(panel.script, media_type=_MEDIA_TYPES[".js"], headers=_HEADERS)

    return [
        Route(path, page, methods=["GET"], name="console:page"),
        Route(
            f"{path}/assets/panels.json",
            panel_list,
            methods=["GET"],
            name="console:panels",
            include_in_schema=False,
        ),
        Route(
            f"{path}/assets/{{name}}", asset, methods=["GET"], name="console:asset", include_in_schema=False
        ),
        Route(
            f"{path}/assets/panels/{{panel}}.js",
            panel_script,
            methods=["GET"],
            name="console:panel",
            include_in_schema=False,
        ),
    ]
