"""``GET /openapi.json`` and a self-hosted Swagger UI at ``GET /api-docs``.

The UI's files come from the ``swagger-ui-bundle`` package and are served by
the app itself (no CDN). The page has no inline script: a small initializer
file reads the document URL from a ``data-`` attribute, so a policy of
``script-src 'self'`` is enough. Nothing from the request reaches the page
unescaped: the root path (which carries the tenant slug under ``/t/{slug}/``)
is percent-encoded into its URLs and every attribute is HTML-escaped.
"""

from __future__ import annotations

import html
import json
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from tenantkit.errors import MissingDependencyError, NotFoundError
from tenantkit.openapi import describe
from tenantkit.openapi.document import downgrade_to_30, openapi_document

__all__ = ["ASSETS", "INITIALIZER", "openapi_routes", "swagger_ui_directory"]

INITIALIZER = """\
"use strict";
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    tryItOutEnabled: false,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""
"""The Swagger UI initializer, served as ``{docs_path}/assets/tenantkit-init.js``."""

#: Files served under ``{docs_path}/assets/``, with their media types.
ASSETS: dict[str, str] = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
_INIT_NAME = "tenantkit-init.js"
_JS = "text/javascript; charset=utf-8"
_ASSET_CACHE = "public, max-age=86400"


def swagger_ui_directory() -> Path:
    """The directory of Swagger UI's distribution files (from ``swagger-ui-bundle``).

    Raises:
        MissingDependencyError: ``swagger-ui-bundle`` is not installed.
    """
    try:
        import swagger_ui_bundle  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - a base dependency
        raise MissingDependencyError("all", "Swagger UI") from None
    return Path(swagger_ui_bundle.swagger_ui_path)


def _url_path(root_path: str, path: str) -> str:
    """``root_path + path`` as a same-origin absolute path, safe in any URL and HTML attribute.

    ``root_path`` may carry request input (the tenant slug of ``/t/{slug}/``):
    every character but ``/`` and the unreserved ones is percent-encoded, and
    leading slashes collapse to one so the result never becomes a
    scheme-relative (``//host``) URL.
    """
    quoted = quote(f"{root_path}{path}", safe="/")
    return "/" + quoted.lstrip("/")


def _page(title: str, root: str, docs_path: str, spec_url: str) -> str:
    assets = html.escape(_url_path(root, f"{docs_path}/assets"), quote=True)
    name = html.escape(title)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name} · API documentation</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="{assets}/favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{html.escape(spec_url, quote=True)}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/{_INIT_NAME}"></script>
</body>
</html>
"""


def openapi_routes(
    routes: Sequence[BaseRoute] | Callable[[], Sequence[BaseRoute]] | None = None,
    *,
    title: str,
    version: str,
    description: str | None = None,
    servers: Sequence[Mapping[str, Any]] = (),
    path: str = "/openapi.json",
    docs_path: str = "/api-docs",
) -> list[BaseRoute]:
    """Routes serving the OpenAPI document and Swagger UI.

    The document is built on the first request and cached for the app.

    Args:
        routes: The routes to describe (or a callable returning them); ``None``
            describes every route of the app serving the request.
        title: ``info.title``.
        version: ``info.version``.
        description: ``info.description`` (Markdown).
        servers: ``servers`` entries of the document.
        path: Where the OpenAPI 3.1 document is served.
        docs_path: Where Swagger UI is served; its files live under
            ``{docs_path}/assets/`` and the 3.0 rendering it reads at
            ``{docs_path}/openapi-3.0.json``.

    Returns:
        ``[GET path, GET docs_path, GET {docs_path}/openapi-3.0.json, GET {docs_path}/assets/{name}]``.
    """
    directory = swagger_ui_directory()
    cache: weakref.WeakKeyDictionary[Any, tuple[bytes, bytes]] = weakref.WeakKeyDictionary()
    fallback: dict[str, tuple[bytes, bytes]] = {}

    def documents(request: Request) -> tuple[bytes, bytes]:
        app = request.scope.get("app")
        built = fallback.get("doc") if app is None else cache.get(app)
        if built is None:
            source = routes() if callable(routes) else routes
            if source is None:
                source = list(getattr(app, "routes", ()))
            document = openapi_document(
                source, title=title, version=version, description=description, servers=servers
            )
            built = (
                json.dumps(document, separators=(",", ":")).encode(),
                json.dumps(downgrade_to_30(document), separators=(",", ":")).encode(),
            )
            if app is None:
                fallback["doc"] = built
            else:
                cache[app] = built
        return built

    @describe(summary="The OpenAPI 3.1 document", tags=["docs"], public=True)
    async def openapi_json(request: Request) -> Response:
        return Response(documents(request)[0], media_type="application/json")

    @describe(summary="The OpenAPI document rendered as 3.0.3 (for Swagger UI)", tags=["docs"], public=True)
    async def openapi_30_json(request: Request) -> Response:
        return Response(documents(request)[1], media_type="application/json")

    @describe(summary="Swagger UI", tags=["docs"], public=True, media_type="text/html")
    async def swagger_ui(request: Request) -> Response:
        root = str(request.scope.get("root_path", ""))
        page = _page(title, root, docs_path, _url_path(root, f"{docs_path}/openapi-3.0.json"))
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        headers = {"Cache-Control": _ASSET_CACHE}
        if name == _INIT_NAME:
            return Response(INITIALIZER, media_type=_JS, headers=headers)
        media_type = ASSETS.get(name)
        if media_type is None:
            raise NotFoundError("No such asset.")
        return FileResponse(directory / name, media_type=media_type, headers=headers)

    return [
        Route(path, openapi_json, methods=["GET"], name="openapi:document"),
        Route(docs_path, swagger_ui, methods=["GET"], name="openapi:docs"),
        Route(f"{docs_path}/openapi-3.0.json", openapi_30_json, methods=["GET"], name="openapi:document-3.0"),
        Route(
            f"{docs_path}/assets/{{name}}",
            asset,
            methods=["GET"],
            name="openapi:asset",
            include_in_schema=False,
        ),
    ]
