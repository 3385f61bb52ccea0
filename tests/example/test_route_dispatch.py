"""The precompiled route dispatch picks exactly the route Starlette's own matching picks.

Every route of the example app (and a few made-up paths: unknown, trailing
slash, wrong method, under a root path) is resolved both ways: by
``RouteDispatch.select`` and by Starlette's rule (every route in order, the
first full match, else the first partial one). Then over HTTP: the dispatch is
installed, a wrong method still answers 405 with ``Allow``, a missing trailing
slash still redirects, ``url_for`` still builds paths.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match, Mount, Route

from inventory_app.app import create_app
from tenantkit import TenantKit
from tenantkit.routing import RouteDispatch, compile_router, walk_routes
from tests.example.conftest import Example
from tests.helpers import serve

SAMPLES = {"uuid": str(uuid.UUID(int=7)), "int": "42", "path": "a/b.txt", "float": "1.5", "str": "x-1"}


def fill(path: str) -> str:
    def sample(match: re.Match[str]) -> str:
        converter = match.group(1).partition(":")[2] or "str"
        return SAMPLES.get(converter, "x")

    return re.sub(r"\{([^}]+)\}", sample, path)


def starlette_select(
    routes: list[BaseRoute], scope: dict[str, Any]
) -> tuple[BaseRoute | None, dict[str, Any]]:
    """Starlette's ``Router.app`` rule, written out."""
    partial, partial_scope = None, {}
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            return route, child
        if match is Match.PARTIAL and partial is None:
            partial, partial_scope = route, child
    return partial, partial_scope


def scope_for(method: str, path: str, root_path: str = "") -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": root_path + path,
        "root_path": root_path,
        "headers": [(b"host", b"testserver")],
        "query_string": b"",
    }


def probes(app: Starlette) -> list[tuple[str, str, str]]:
    found = set()
    for entry in walk_routes(app.routes):
        path = fill(entry.path)
        for method in {*entry.methods, "GET", "POST", "DELETE", "PATCH"}:
            found.add((method, path, ""))
            found.add((method, path, "/api"))  # behind a root path
        found.add(("GET", path + "/", ""))  # trailing slash
        found.add(("GET", path + "/extra", ""))
    for path in ["/", "/nope", "/auth", "/auth/", "/t", "/t/acme/products", "/products/x/y/z", "//", ""]:
        found.add(("GET", path, ""))
    return sorted(found)


@pytest.fixture
def app(example_kit_factory: Callable[..., TenantKit]) -> Starlette:
    return create_app(example_kit_factory())


def test_every_route_resolves_as_starlette_resolves_it(app: Starlette) -> None:
    routes = list(app.router.routes)
    assert len(list(walk_routes(routes))) > 50
    dispatch = RouteDispatch(app.router)
    checked = 0
    for method, path, root in probes(app):
        scope = scope_for(method, path, root)
        expected = starlette_select(routes, scope)
        actual = dispatch.select(scope)
        assert actual[0] is expected[0], (method, path, root)
        assert actual[1] == expected[1], (method, path, root)
        checked += 1
    assert checked > 500


def test_build_app_installs_the_dispatch(app: Starlette) -> None:
    assert isinstance(app.router.middleware_stack, RouteDispatch)


async def endpoint(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "params": {k: str(v) for k, v in request.path_params.items()},
            "url": str(request.url_for("item", item_id=uuid.UUID(int=1))),
        }
    )


def small_app() -> Starlette:
    inner = [Route("/deep/{n:int}", endpoint, name="deep")]
    app = Starlette(
        routes=[
            Route("/items/{item_id:uuid}", endpoint, name="item", methods=["GET", "DELETE"]),
            Route("/items/special", endpoint, methods=["POST"]),
            Route("/{anything}/tail", endpoint),
            Mount("/m", routes=inner),
            Route("/slash/", endpoint),
        ]
    )
    compile_router(app.router)
    return app


async def test_starlette_semantics_over_http() -> None:
    app = small_app()
    assert isinstance(app.router.middleware_stack, RouteDispatch)
    async with serve(app) as client:
        item = await client.get(f"/items/{uuid.UUID(int=5)}")
        assert item.status_code == 200
        assert item.json()["params"] == {"item_id": str(uuid.UUID(int=5))}
        assert item.json()["url"].endswith(f"/items/{uuid.UUID(int=1)}")
        wrong = await client.put(f"/items/{uuid.UUID(int=5)}")
        assert wrong.status_code == 405
        assert set(wrong.headers["allow"].split(", ")) == {"GET", "DELETE", "HEAD"}
        # a static path shadowed by an earlier pattern that does not match it
        assert (await client.post("/items/special")).status_code == 200
        assert (await client.get("/whatever/tail")).json()["params"] == {"anything": "whatever"}
        assert (await client.get("/m/deep/3")).json()["params"] == {"n": "3"}
        redirect = await client.get("/slash", follow_redirects=False)
        assert redirect.status_code == 307 and redirect.headers["location"].endswith("/slash/")
        assert (await client.get("/nowhere")).status_code == 404
        # routes added after the app was built are found too
        app.router.routes.append(Route("/late", endpoint))
        assert (await client.get("/late")).status_code == 200


async def test_the_example_app_answers_through_it(example: Example) -> None:
    assert (await example.client.get("/health")).status_code == 200
    wrong = await example.client.put("/auth/me")
    assert wrong.status_code == 405
    assert "GET" in wrong.headers["allow"]
