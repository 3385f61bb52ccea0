"""HTTP handlers for managing a tenant's webhooks (no permission checks of their own).

``GET /webhooks`` lists endpoints (never their secrets), ``POST /webhooks``
with ``{url, events, description?}`` answers 201 with the ``whsec_...``
secret (the only time it is shown), ``DELETE /webhooks/{id}`` answers 204.
``GET /webhooks/{id}/deliveries`` and ``POST /webhooks/deliveries/{id}/requeue``
expose the outbox. The handlers act in the request's tenant; protect them with
``decorate=requires_permissions("webhooks.manage")``.
"""

from __future__ import annotations

import string
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any

import pydantic
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tenantkit.errors import ValidationError
from tenantkit.http import json_response, parse_body, path_uuid
from tenantkit.normalize import StorableText
from tenantkit.openapi import describe
from tenantkit.openapi.schemas import (
    DeliveryQuery,
    WebhookDeliveryOut,
    WebhookDeliveryPage,
    WebhookEndpointCreatedOut,
    WebhookEndpointPage,
)
from tenantkit.security.ssrf import MAX_URL_LENGTH
from tenantkit.webhooks.models import DELIVERY_STATUSES, WebhookDelivery, WebhookEndpoint
from tenantkit.webhooks.service import MAX_DESCRIPTION, MAX_EVENT_TYPE, MAX_EVENTS, WebhookService

__all__ = [
    "WebhookEndpointIn",
    "create_webhook",
    "delete_webhook",
    "delivery_to_dict",
    "endpoint_to_dict",
    "list_webhook_deliveries",
    "list_webhooks",
    "requeue_webhook_delivery",
    "webhook_routes",
]

Endpoint = Callable[[Request], Awaitable[Response]]


def _letters(chars: str) -> str:
    return "".join(f"{c}{c.upper()}" for c in sorted(chars))


def _tld_except(words: Iterable[str], low: int, high: int) -> str:
    """A regex (no lookarounds) for ``low``-``high`` ASCII letters, any case, other than ``words``."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any], depth: int) -> str:
        children = sorted(c for c in node if c)
        options = []
        others = "".join(c for c in string.ascii_lowercase if c not in children)
        rest_low, rest_high = max(low - depth - 1, 0), high - depth - 1
        if others and rest_high >= 0:
            options.append(f"[{_letters(others)}][A-Za-z]{{{rest_low},{rest_high}}}")
        options += [f"[{_letters(c)}]{build(node[c], depth + 1)}" for c in children if depth + 1 <= high]
        group = f"(?:{'|'.join(options)})" if options else ""
        ends_here = "" not in node and depth >= low
        if not group:
            return ""
        return f"{group}?" if ends_here else group

    return build(trie, 0)


_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_PORT = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
#: A webhook URL the SSRF check (:func:`tenantkit.security.ssrf.validate_url`) accepts, as a
#: pattern: ``http(s)://`` and a host name of two to four labels whose last one (the TLD) is
#: letters and not ``local``, ``localhost``, ``localdomain``, ``internal`` or ``arpa``, an
#: optional port (1-65535), then any printable ASCII but a backslash. IP literals and names of
#: the allow list (``TENANTKIT_WEBHOOK_ALLOW_HOSTS``) are also accepted when they pass the check.
WEBHOOK_URL_PATTERN = (
    rf"^[Hh][Tt][Tt][Pp][Ss]?://(?:{_HOST_LABEL}\.){{1,3}}"
    rf"{_tld_except(['local', 'localhost', 'localdomain', 'internal', 'arpa'], 2, 61)}"
    rf"(?::{_PORT})?(?:[/?#][!-\[\]-~]*)?$"
)
#: An event type (``order.created``), a prefix (``order.*``) or ``*``.
EVENT_PATTERN = r"^(?:\*|[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*(?:\.\*)?)$"


class WebhookEndpointIn(pydantic.BaseModel):
    """Body of ``POST /webhooks``: the URL to call and the events it subscribes to."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    #: The pattern documents the URLs the SSRF check accepts; the check itself (with its
    #: precise 422 reason, and the allow list) is the service's, so it is not enforced twice.
    url: Annotated[
        str,
        pydantic.StringConstraints(max_length=MAX_URL_LENGTH),
        pydantic.Field(
            description=(
                "An `http(s)` URL with a public host name (see the pattern). IP literals must be "
                "public and dotted-decimal; hosts of the server's allow list are accepted as well."
            ),
            json_schema_extra={"pattern": WEBHOOK_URL_PATTERN},
        ),
    ]
    events: Annotated[
        list[Annotated[str, pydantic.StringConstraints(max_length=MAX_EVENT_TYPE, pattern=EVENT_PATTERN)]],
        pydantic.Field(min_length=1, max_length=MAX_EVENTS),
    ]
    description: Annotated[
        str,
        pydantic.StringConstraints(max_length=MAX_DESCRIPTION),
        StorableText(),
    ] = ""


def endpoint_to_dict(endpoint: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    """An endpoint as JSON data; ``secret`` only when given (at creation)."""
    data: dict[str, Any] = {
        "id": str(endpoint.id),
        "url": endpoint.url,
        "events": list(endpoint.events),
        "description": endpoint.description,
        "active": endpoint.active,
        "created_at": endpoint.created_at.isoformat(),
    }
    if secret is not None:
        data["secret"] = secret
    return data


def delivery_to_dict(delivery: WebhookDelivery) -> dict[str, Any]:
    """A delivery as JSON data (without its payload)."""
    return {
        "id": str(delivery.id),
        "endpoint_id": str(delivery.endpoint_id),
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at.isoformat() if delivery.status == "pending" else None,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at.isoformat(),
        "delivered_at": delivery.delivered_at.isoformat() if delivery.delivered_at else None,
    }


async def list_webhooks(request: Request, service: WebhookService) -> Response:
    """``GET /webhooks``: ``{"items": [...], "next_cursor": null}``, secrets omitted."""
    endpoints = await service.list_endpoints()
    return json_response({"items": [endpoint_to_dict(e) for e in endpoints], "next_cursor": None})


async def create_webhook(request: Request, service: WebhookService, *, max_json_depth: int = 32) -> Response:
    """``POST /webhooks``: 201 with the endpoint and its secret; 422 for an unsafe URL or bad events."""
    body = await parse_body(request, WebhookEndpointIn, max_depth=max_json_depth)
    endpoint, secret = await service.create_endpoint(body.url, body.events, body.description)
    return json_response(endpoint_to_dict(endpoint, secret), status_code=201)


async def delete_webhook(request: Request, service: WebhookService) -> Response:
    """``DELETE /webhooks/{id}``: 204; 404 when unknown or another tenant's."""
    await service.delete_endpoint(path_uuid(request, "id", missing="No such webhook endpoint."))
    return Response(status_code=204)


async def list_webhook_deliveries(request: Request, service: WebhookService) -> Response:
    """``GET /webhooks/{id}/deliveries?status=``: the endpoint's latest deliveries (100)."""
    endpoint = await service.get_endpoint(path_uuid(request, "id", missing="No such webhook endpoint."))
    status = request.query_params.get("status")
    if status is not None and status not in DELIVERY_STATUSES:
        raise ValidationError(
            [{"loc": ["query", "status"], "msg": f"must be one of {list(DELIVERY_STATUSES)}", "type": "enum"}]
        )
    deliveries = await service.list_deliveries(status, endpoint_id=endpoint.id)
    return json_response({"items": [delivery_to_dict(d) for d in deliveries], "next_cursor": None})


async def requeue_webhook_delivery(request: Request, service: WebhookService) -> Response:
    """``POST /webhooks/deliveries/{id}/requeue``: 200 with the delivery; 409 unless it is dead."""
    delivery = await service.requeue(path_uuid(request, "id", missing="No such webhook delivery."))
    return json_response(delivery_to_dict(delivery))


def webhook_routes(
    service: WebhookService,
    *,
    decorate: Callable[[Endpoint], Endpoint] | None = None,
    max_json_depth: int = 32,
) -> list[BaseRoute]:
    """Starlette routes for the handlers above, bound to ``service``.

    Args:
        service: The webhook service the handlers use.
        decorate: Applied to every endpoint, e.g.
            ``requires_permissions("webhooks.manage")``.
        max_json_depth: Deepest JSON accepted in request bodies.
    """
    wrap = decorate or (lambda endpoint: endpoint)

    @describe(summary="The tenant's webhook endpoints", response=WebhookEndpointPage, tags=["webhooks"])
    async def list_endpoint(request: Request) -> Response:
        return await list_webhooks(request, service)

    @describe(
        summary="Register a webhook endpoint (its secret is shown once)",
        body=WebhookEndpointIn,
        response=WebhookEndpointCreatedOut,
        status=201,
        responses={422: "Unsafe URL or unknown events."},
        tags=["webhooks"],
    )
    async def create_endpoint(request: Request) -> Response:
        return await create_webhook(request, service, max_json_depth=max_json_depth)

    @describe(
        summary="Delete a webhook endpoint",
        status=204,
        responses={404: "No such endpoint."},
        tags=["webhooks"],
    )
    async def delete_endpoint(request: Request) -> Response:
        return await delete_webhook(request, service)

    @describe(
        summary="An endpoint's latest deliveries",
        query=DeliveryQuery,
        response=WebhookDeliveryPage,
        responses={404: "No such endpoint."},
        tags=["webhooks"],
    )
    async def deliveries_endpoint(request: Request) -> Response:
        return await list_webhook_deliveries(request, service)

    @describe(
        summary="Retry a dead delivery",
        response=WebhookDeliveryOut,
        responses={404: "No such delivery.", 409: "The delivery is not dead."},
        tags=["webhooks"],
    )
    async def requeue_endpoint(request: Request) -> Response:
        return await requeue_webhook_delivery(request, service)

    return [
        Route("/webhooks", wrap(list_endpoint), methods=["GET"], name="tenantkit_webhooks_list"),
        Route("/webhooks", wrap(create_endpoint), methods=["POST"], name="tenantkit_webhooks_create"),
        Route("/webhooks/{id}", wrap(delete_endpoint), methods=["DELETE"], name="tenantkit_webhooks_delete"),
        Route(
            "/webhooks/{id}/deliveries",
            wrap(deliveries_endpoint),
            methods=["GET"],
            name="tenantkit_webhooks_deliveries",
        ),
        Route(
            "/webhooks/deliveries/{id}/requeue",
            wrap(requeue_endpoint),
            methods=["POST"],
            name="tenantkit_webhooks_requeue",
        ),
    ]
