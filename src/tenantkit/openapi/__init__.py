"""OpenAPI 3.1 from Starlette routes and pydantic schemas, and a self-hosted Swagger UI.

Endpoints describe themselves with :func:`describe`; the permissions a route
requires come from the ``requires_*`` guards, so they are never restated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from tenantkit.routing import DESCRIPTION_ATTRIBUTE

__all__ = ["DESCRIPTION_ATTRIBUTE", "describe", "downgrade_to_30", "openapi_document", "openapi_routes"]

F = TypeVar("F", bound=Callable[..., Any])


def describe(
    *,
    summary: str | None = None,
    body: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    query: type[BaseModel] | None = None,
    responses: Mapping[int, str] | None = None,
    tags: Sequence[str] = (),
    public: bool = False,
    media_type: str | None = None,
    body_media_type: str | None = None,
    rate_limited: bool = True,
) -> Callable[[F], F]:
    """Describe an endpoint for the OpenAPI document.

    Args:
        summary: One line shown in Swagger UI (defaults to the docstring's first line).
        body: The JSON request body schema.
        response: The success response schema (``None`` for an empty body).
        status: The success status code.
        query: A model whose fields are the query parameters.
        responses: Extra documented statuses and what they mean.
        tags: Groups in Swagger UI.
        public: ``True`` when the route needs no bearer token.
        media_type: The success response's media type when it is not a JSON
            ``response`` model (``"text/plain"``, ``"application/octet-stream"``).
        body_media_type: The media type of a raw (non-JSON) request body.
        rate_limited: ``False`` for routes the rate limiter never counts (health
            checks and metrics scrapes).

    Read it back with :func:`tenantkit.routing.route_spec`: one frozen
    ``RouteSpec`` merging this description with the guards' permissions.

    Permissions are never restated here: the ``requires_*`` guards on the
    endpoint publish them (``x-permissions``). Stack ``describe`` above or
    below the guard, both work.

    Example:
        ```python
        @describe(summary="Create a product", body=ProductIn, response=ProductOut, status=201,
                  responses={409: "A product with this SKU exists."}, tags=["products"])
        @requires_permissions("products.create")
        async def create_product(request: Request) -> Response: ...
        ```
    """

    def decorator(endpoint: F) -> F:
        setattr(
            endpoint,
            DESCRIPTION_ATTRIBUTE,
            {
                "summary": summary,
                "body": body,
                "response": response,
                "status": status,
                "query": query,
                "responses": dict(responses or {}),
                "tags": list(tags),
                "public": public,
                "media_type": media_type,
                "body_media_type": body_media_type,
                "rate_limited": rate_limited,
            },
        )
        return endpoint

    return decorator


from tenantkit.openapi.document import downgrade_to_30, openapi_document  # noqa: E402
from tenantkit.openapi.ui import openapi_routes  # noqa: E402
