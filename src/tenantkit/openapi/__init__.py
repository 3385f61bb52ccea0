"""OpenAPI 3.1 from Starlette routes and pydantic schemas, and a self-hosted Swagger UI.

Endpoints describe themselves with :func:`describe`; the permissions a route
requires come from the ``requires_*`` guards, so they are never restated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["describe"]

F = TypeVar("F", bound=Callable[..., Any])

#: Attribute on an endpoint that holds its OpenAPI description.
DESCRIPTION_ATTRIBUTE = "__tenantkit_openapi__"


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
            },
        )
        return endpoint

    return decorator
