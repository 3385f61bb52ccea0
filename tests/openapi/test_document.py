"""The OpenAPI document: valid 3.1, complete, with bodies, security and permissions."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator
from pydantic import BaseModel
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from tenantkit import TenantKit
from tenantkit.openapi import describe, downgrade_to_30, openapi_document
from tenantkit.rbac.decorators import requires_permissions, requires_roles
from tests.helpers import serve


class WidgetIn(BaseModel):
    name: str
    price: str | None = None


class WidgetOut(BaseModel):
    id: str
    name: str
    tags: list[str]


class WidgetQuery(BaseModel):
    limit: int = 50
    q: str | None = None


@describe(summary="List widgets", query=WidgetQuery, response=WidgetOut, tags=["widgets"])
@requires_permissions("widgets.read")
async def list_widgets(request: Request) -> Response:
    return JSONResponse([])


@describe(
    summary="Create a widget",
    body=WidgetIn,
    response=WidgetOut,
    status=201,
    responses={409: "Duplicate name."},
)
@requires_permissions("widgets.create", "widgets.read")
async def create_widget(request: Request) -> Response:
    return JSONResponse({}, 201)


@requires_permissions("widgets.read", "widgets.admin", any_of=True)
async def get_widget(request: Request) -> Response:
    """Read one widget.

    Longer text shown in the description.
    """
    return JSONResponse({})


@requires_roles("ADMIN")
async def purge(request: Request) -> Response:
    return Response(status_code=204)


class Gadgets(HTTPEndpoint):
    async def get(self, request: Request) -> Response:
        return JSONResponse([])

    @describe(status=204, public=True)
    async def delete(self, request: Request) -> Response:
        return Response(status_code=204)


def app_routes() -> list[BaseRoute]:
    return [
        Route("/widgets", list_widgets, methods=["GET"], name="widgets:list"),
        Route("/widgets", create_widget, methods=["POST"], name="widgets:create"),
        Mount(
            "/v1",
            routes=[
                Route("/widgets/{widget_id:uuid}", get_widget, methods=["GET"]),
                Route("/purge/{n:int}", purge, methods=["POST", "DELETE"], name="purge"),
                Route("/gadgets", Gadgets),
            ],
        ),
    ]


PERMISSIONS = [
    ("widgets.read", "Read widgets"),
    ("widgets.create", "Create widgets"),
    ("widgets.admin", "Administer widgets"),
]


@pytest.fixture
async def served(kit_factory: Callable[..., TenantKit]) -> Any:
    kit = kit_factory(permissions=PERMISSIONS)
    app = kit.build_app(routes=app_routes(), openapi={"title": "Widgets API", "version": "2.1"})
    async with serve(app) as client:
        response = await client.get("/openapi.json")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        yield app, client, response.json()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in document["paths"].items() for method, op in item.items()]


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        parts = node["$ref"].removeprefix("#/").split("/")
        target: Any = document
        for part in parts:
            target = target[part]
        node = target
    return node


async def test_document_is_valid_openapi_31(served: Any) -> None:
    _, _, document = served
    OpenAPIV31SpecValidator(document).validate()
    assert document["openapi"] == "3.1.0"
    assert document["info"] == {"title": "Widgets API", "version": "2.1"}


async def test_every_route_is_documented_except_assets(served: Any) -> None:
    app, _, document = served

    def walk(routes: list[BaseRoute], prefix: str = "") -> list[tuple[str, str]]:
        found = []
        for route in routes:
            if isinstance(route, Mount):
                found += walk(list(route.routes), prefix + route.path)
            elif isinstance(route, Route):
                path = re.sub(r"\{(\w+):\w+\}", r"{\1}", prefix + route.path)
                if "/assets/" in path:
                    continue
                if path.startswith("/scim/v2/"):  # SCIM: its own discovery (/Schemas...), not OpenAPI
                    assert not route.include_in_schema
                    continue
                methods = route.methods or {"GET", "DELETE"}
                found += [(path, m.lower()) for m in methods if m != "HEAD"]
        return found

    expected = walk(list(app.routes))
    assert len(expected) > 30
    missing = [(p, m) for p, m in expected if m not in document["paths"].get(p, {})]
    assert missing == []
    assert not any("/assets/" in path for path in document["paths"])
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids))
    assert "/openapi.json" in document["paths"]
    assert "/api-docs" in document["paths"]


async def test_auth_routes_have_bodies_and_responses(served: Any) -> None:
    _, _, document = served
    login = document["paths"]["/auth/login"]["post"]
    body = resolve(document, login["requestBody"]["content"]["application/json"]["schema"])
    assert {"email", "password"} <= set(body["properties"])
    assert set(body["required"]) == {"email", "password"}
    assert login["requestBody"]["required"] is True
    outcome = resolve(document, login["responses"]["200"]["content"]["application/json"]["schema"])
    shapes = [resolve(document, option) for option in outcome["anyOf"]]  # a token pair, or a 2FA challenge
    assert {frozenset(shape["required"]) for shape in shapes} == {
        frozenset({"access_token", "token_type", "expires_in", "refresh_token"}),
        frozenset({"mfa_required", "mfa_token", "methods"}),
    }
    assert login["security"] == []
    assert "423" in login["responses"]

    register = document["paths"]["/auth/register"]["post"]
    assert "201" in register["responses"]
    assert "409" in register["responses"]
    refresh = document["paths"]["/auth/refresh"]["post"]
    assert refresh["requestBody"]["required"] is False  # the cookie works too

    me = document["paths"]["/auth/me"]["get"]
    assert me["security"] == [{"bearerAuth": []}]
    whoami = resolve(document, me["responses"]["200"]["content"]["application/json"]["schema"])
    user_shape, key_shape = (resolve(document, option) for option in whoami["anyOf"])  # a user, or an API key
    assert {"id", "email", "tenant", "role", "permissions"} <= set(user_shape["properties"])
    assert {"api_key", "tenant", "permissions"} == set(key_shape["properties"])
    assert "x-permissions" not in me
    assert "204" in document["paths"]["/auth/logout"]["post"]["responses"]
    assert "content" not in document["paths"]["/auth/logout"]["post"]["responses"]["204"]

    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert document["paths"]["/health"]["get"]["security"] == []
    assert "text/plain" in document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


async def test_permissions_are_published(served: Any) -> None:
    _, _, document = served
    users = document["paths"]["/users"]["get"]
    assert users["x-permissions"] == ["users.read"]
    assert "`users.read`" in users["description"]
    assert users["security"] == [{"bearerAuth": []}]

    create = document["paths"]["/widgets"]["post"]
    assert create["x-permissions"] == ["widgets.create", "widgets.read"]
    assert "all of the permissions" in create["description"]
    assert create["summary"] == "Create a widget"
    assert "409" in create["responses"]
    assert create["operationId"] == "widgets_create"

    one = document["paths"]["/v1/widgets/{widget_id}"]["get"]
    assert one["x-permissions-any-of"] is True
    assert one["summary"] == "Read one widget."
    assert "Longer text" in one["description"]
    assert one["parameters"][0] == {
        "name": "widget_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }
    assert {"$ref": "#/components/parameters/TenantHeader"} in one["parameters"]

    purge_ops = document["paths"]["/v1/purge/{n}"]
    assert set(purge_ops) == {"post", "delete"}
    assert purge_ops["post"]["x-roles"] == ["ADMIN"]
    assert purge_ops["post"]["operationId"] != purge_ops["delete"]["operationId"]
    assert purge_ops["post"]["parameters"][0]["schema"]["type"] == "integer"

    webhooks_free = document["paths"]["/v1/gadgets"]
    assert webhooks_free["get"]["security"] == []
    assert "204" in webhooks_free["delete"]["responses"]


async def test_query_models_become_parameters(served: Any) -> None:
    _, _, document = served
    listing = document["paths"]["/widgets"]["get"]
    query = {p["name"]: p for p in listing["parameters"] if p.get("in") == "query"}
    assert set(query) == {"limit", "q"}
    assert query["limit"]["schema"]["type"] == "integer"
    assert query["limit"]["required"] is False
    assert "422" in listing["responses"]


async def test_errors_are_problem_documents(served: Any) -> None:
    _, _, document = served
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    for path, method, op in operations(document):
        statuses = set(op["responses"])
        assert {"401", "429"} <= statuses, (path, method)
        if "requestBody" in op and "application/json" in op["requestBody"]["content"]:
            assert {"400", "413", "415", "422"} <= statuses, (path, method)
        if op["security"]:
            assert "403" in statuses, (path, method)
        for status, response in op["responses"].items():
            if int(status) >= 400:
                response = resolve(document, response)
                schema = response["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}
    assert "Retry-After" in document["components"]["responses"]["TooManyRequests"]["headers"]


async def test_document_is_cached_per_app(served: Any) -> None:
    app, client, document = served
    app.router.routes.append(Route("/late", list_widgets, methods=["GET"]))
    again = (await client.get("/openapi.json")).json()
    assert again == document
    assert "/late" not in again["paths"]


async def test_swagger_ui_document_is_valid_30(served: Any) -> None:
    _, client, document = served
    response = await client.get("/api-docs/openapi-3.0.json")
    assert response.status_code == 200
    legacy = response.json()
    OpenAPIV30SpecValidator(legacy).validate()
    assert legacy["openapi"] == "3.0.3"
    assert set(legacy["paths"]) == set(document["paths"])
    me = legacy["components"]["schemas"]["MeOut"]["properties"]["email"]
    assert me.get("nullable") is True
    assert legacy == downgrade_to_30(document)


def test_openapi_document_without_a_kit() -> None:
    document = openapi_document(app_routes(), title="Bare", version="0", description="Just routes.")
    OpenAPIV31SpecValidator(document).validate()
    assert document["info"]["description"] == "Just routes."
    assert set(document["paths"]) == {"/widgets", "/v1/widgets/{widget_id}", "/v1/purge/{n}", "/v1/gadgets"}
    widget_in = document["components"]["schemas"]["WidgetIn"]
    assert widget_in["required"] == ["name"]
