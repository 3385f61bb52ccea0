"""Build an OpenAPI 3.1 document from Starlette routes.

Every operation is generated from its route's contract
(:func:`tenantkit.routing.route_spec`): the same pydantic models that validate
bodies and query strings describe them, and the statuses an operation can
answer are derived from what the route declares (a body, authentication, a
permission, a tenant, path parameters) instead of being restated by hand.
Pydantic models become ``components.schemas``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.routing import BaseRoute

from tenantkit.openapi.downgrade import downgrade_to_30
from tenantkit.openapi.schemas import (
    DeadLetterPage,
    Problem,
    RequeuedJobOut,
)
from tenantkit.pagination import CURSOR_MAX_LENGTH, CURSOR_PATTERN
from tenantkit.routing import GUARD_ATTRIBUTE, RouteSpec, walk_routes

__all__ = ["GUARD_ATTRIBUTE", "REF_TEMPLATE", "downgrade_to_30", "openapi_document", "statuses_of"]

#: Where pydantic's references point in the document.
REF_TEMPLATE = "#/components/schemas/{model}"

_METHODS = ("get", "put", "post", "delete", "options", "patch", "trace")
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?\}")
_CONVERTERS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "path": {"type": "string"},
    "int": {"type": "integer", "minimum": 0},
    "float": {"type": "number", "minimum": 0},
    "uuid": {"type": "string", "format": "uuid"},
}
_PROBLEM = "application/problem+json"
_CURSOR = {"type": "string", "minLength": 1, "maxLength": CURSOR_MAX_LENGTH, "pattern": CURSOR_PATTERN}

#: Shared error responses, referenced from operations as ``#/components/responses/<name>``.
_ERRORS: dict[int, tuple[str, str]] = {
    400: (
        "BadRequest",
        "Malformed JSON, an empty `X-Tenant-ID`, a tampered cursor, or no tenant could be determined.",
    ),
    401: ("Unauthorized", "Missing, invalid, expired or revoked bearer token (`WWW-Authenticate: Bearer`)."),
    403: (
        "Forbidden",
        "Not allowed: missing permission, suspended tenant, or a tenant the token is not bound to.",
    ),
    404: ("NotFound", "Not found (or another tenant's), or an unknown tenant."),
    409: ("Conflict", "Conflicts with the current state."),
    413: ("ContentTooLarge", "The body is larger than the limit, or JSON nested too deeply."),
    415: ("UnsupportedMediaType", "The body is not `application/json`."),
    422: ("UnprocessableContent", "Invalid fields or query parameters; `errors` lists each one."),
    423: ("Locked", "The account is locked after repeated failures (`Retry-After`)."),
    429: ("TooManyRequests", "Rate limited (`Retry-After`)."),
    503: ("ServiceUnavailable", "A backing service is unavailable (`Retry-After`)."),
}

#: Descriptions of tenantkit routes whose modules carry no ``describe`` decorator, by route name.
_BUILTIN: dict[str, dict[str, Any]] = {
    "jobs:dead-letters": {
        "summary": "List dead-lettered jobs",
        "response": DeadLetterPage,
        "tags": ("jobs",),
        "extra": {
            "query_parameters": [
                ("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "Page size."),
                ("cursor", _CURSOR, "`next_cursor` of the previous page."),
            ]
        },
        "responses": {422: "An invalid `limit`."},
    },
    "jobs:requeue": {
        "summary": "Requeue a dead-lettered job",
        "response": RequeuedJobOut,
        "status": 202,
        "tags": ("jobs",),
    },
}


_MODEL_KEYS: tuple[tuple[str, JsonSchemaMode], ...] = (
    ("body", "validation"),
    ("query", "validation"),
    ("response", "serialization"),
)


@dataclass
class _Operation:
    path: str
    method: str
    spec: RouteSpec
    multi: bool
    path_params: dict[str, dict[str, Any]] = field(default_factory=dict)


def _template(path: str) -> tuple[str, dict[str, dict[str, Any]]]:
    params: dict[str, dict[str, Any]] = {}

    def replace(match: re.Match[str]) -> str:
        name, converter = match.group(1), match.group(2) or "str"
        params[name] = dict(_CONVERTERS.get(converter, {"type": "string"}))
        return "{" + name + "}"

    return _PARAM.sub(replace, path), params


def _with_builtin(spec: RouteSpec) -> RouteSpec:
    builtin = _BUILTIN.get(spec.name or "")
    if spec.described or builtin is None:
        return spec
    return dataclasses.replace(spec, **builtin)


def _walk(routes: Iterable[BaseRoute]) -> Iterator[_Operation]:
    entries = [entry for entry in walk_routes(routes) if entry.route.include_in_schema]
    per_route: dict[int, int] = {}
    for entry in entries:
        count = sum(1 for m in entry.methods if m.lower() in _METHODS)
        per_route[id(entry.route)] = per_route.get(id(entry.route), 0) + count
    for entry in entries:
        path, params = _template(entry.path)
        spec = _with_builtin(entry.spec)
        multi = per_route[id(entry.route)] > 1
        for method in (m.lower() for m in entry.methods if m.lower() in _METHODS):
            yield _Operation(path, method, spec, multi, params)


def _has_cursor(spec: RouteSpec) -> bool:
    if spec.query is not None and "cursor" in spec.query.model_fields:
        return True
    return any(name == "cursor" for name, _, _ in spec.extra.get("query_parameters", ()))


def statuses_of(spec: RouteSpec, *, path_params: bool = False) -> set[int]:
    """Every error status a route can answer, derived from its contract.

    Any route: 401 (a bearer token that is present but invalid is refused
    before routing), 429 (rate limit), 503 (a backing service down). A JSON
    body: 400 (malformed), 413, 415, 422. A raw body: 413, 415.
    Acting in a tenant: 400 (no tenant named, or an empty ``X-Tenant-ID``),
    403 (permission, suspended or foreign tenant), 404 (unknown tenant). A
    public route that takes a body may name a tenant too (400/403/404). Path
    parameters: 404. Query parameters: 422, and 400 for a tampered cursor.
    """
    errors = {401, 429, 503}
    if spec.body is not None:
        errors |= {400, 413, 415, 422}
    elif spec.body_media_type:
        errors |= {413, 415}
    if spec.permissions or spec.roles or spec.secured:
        errors |= {400, 403, 404}
    if spec.public and spec.body is not None:
        errors |= {400, 403, 404}
    if path_params:
        errors.add(404)
    if spec.query is not None or spec.extra.get("query_parameters"):
        errors.add(422)
    if _has_cursor(spec):
        errors.add(400)
    return errors


def _takes_tenant_header(spec: RouteSpec) -> bool:
    return spec.secured or (spec.public and spec.body is not None)


def _permissions_text(spec: RouteSpec) -> str | None:
    lines = []
    permissions = list(spec.permissions)
    if permissions:
        codes = ", ".join(f"`{p}`" for p in permissions)
        if len(permissions) == 1:
            lines.append(f"**Requires permission** {codes}.")
        elif spec.any_of:
            lines.append(f"**Requires any of the permissions** {codes}.")
        else:
            lines.append(f"**Requires all of the permissions** {codes}.")
    if spec.roles:
        lines.append(
            f"**Requires the role** {' or '.join(f'`{r}`' for r in spec.roles)} (or a higher built-in role)."
        )
    if not lines and spec.authenticated:
        lines.append("**Requires authentication** (any signed-in user).")
    return "\n\n".join(lines) or None


def _operation_id(operation: _Operation, taken: set[str]) -> str:
    if operation.spec.name:
        base = re.sub(r"[^A-Za-z0-9_]+", "_", operation.spec.name).strip("_")
        if operation.multi:
            base = f"{operation.method}_{base}"
    else:
        base = operation.method + re.sub(r"[^A-Za-z0-9_]+", "_", operation.path).rstrip("_")
    candidate, n = base or operation.method, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    taken.add(candidate)
    return candidate


def _default_tag(path: str) -> str:
    for segment in path.strip("/").split("/"):
        if segment and not segment.startswith("{"):
            return segment.lstrip(".") or "default"
    return "default"


def _error_ref(status: int) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/{_ERRORS[status][0]}"}


def _error_headers(status: int) -> dict[str, Any]:
    if status == 401:
        return {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer` challenge."}}
    if status in (423, 429, 503):
        return {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
    return {}


def _error_components() -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, (name, text) in _ERRORS.items():
        response: dict[str, Any] = {
            "description": text,
            "content": {_PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        headers = _error_headers(status)
        if headers:
            response["headers"] = headers
        responses[name] = response
    return responses


def _collect_models(specs: Iterable[RouteSpec]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    pairs: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(Problem, "serialization"): None}
    for spec in specs:
        for key, mode in _MODEL_KEYS:
            model = getattr(spec, key)
            if isinstance(model, type) and issubclass(model, BaseModel):
                pairs[(model, mode)] = None
    return list(pairs)


def _resolve(schemas: Mapping[str, Any], ref_or_schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = ref_or_schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        resolved: Mapping[str, Any] = schemas[ref.rsplit("/", 1)[-1]]
        return resolved
    return ref_or_schema


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """``T | None`` of an optional query parameter is just ``T``: a query string has no null."""
    options = prop.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        if len(rest) == 1:
            merged = {k: v for k, v in prop.items() if k != "anyOf"}
            merged.update({k: v for k, v in rest[0].items() if k not in merged})
            if merged.get("default", ...) is None:
                merged.pop("default")
            return merged
    return prop


def _query_parameters(schemas: Mapping[str, Any], schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    model = _resolve(schemas, schema)
    required = set(model.get("required", ()))
    parameters = []
    for name, prop in model.get("properties", {}).items():
        prop = _not_null(dict(prop))
        text = prop.pop("description", None)
        prop.pop("title", None)
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if text:
            parameter["description"] = text
        parameters.append(parameter)
    return parameters


def openapi_document(
    routes: Iterable[BaseRoute],
    *,
    title: str,
    version: str,
    description: str | None = None,
    servers: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Describe ``routes`` (``Mount`` included) as an OpenAPI 3.1 document.

    Args:
        routes: The application's routes, e.g. ``app.routes``.
        title: ``info.title``.
        version: ``info.version`` (the API's version, not tenantkit's).
        description: ``info.description`` (Markdown).
        servers: ``servers`` entries, e.g. ``[{"url": "https://api.example.com"}]``.

    Returns:
        The document as JSON-ready data.
    """
    operations = list(_walk(routes))
    key_map, top = models_json_schema(
        _collect_models(op.spec for op in operations), ref_template=REF_TEMPLATE
    )
    schemas: dict[str, Any] = dict(top.get("$defs", {}))

    def schema_of(model: Any, mode: JsonSchemaMode) -> dict[str, Any] | None:
        if isinstance(model, type) and issubclass(model, BaseModel):
            return dict(key_map[(model, mode)])
        return None

    paths: dict[str, dict[str, Any]] = {}
    taken: set[str] = set()
    tags_seen: dict[str, None] = {}
    for operation in operations:
        spec = operation.spec
        summary = spec.summary or (spec.name or operation.path).replace("_", " ")
        tags = list(spec.tags or [_default_tag(operation.path)])
        tags_seen.update(dict.fromkeys(tags))

        op: dict[str, Any] = {
            "operationId": _operation_id(operation, taken),
            "summary": summary,
            "tags": tags,
        }
        text = "\n\n".join(t for t in (spec.description, _permissions_text(spec)) if t)
        if text:
            op["description"] = text
        if spec.permissions:
            op["x-permissions"] = list(spec.permissions)
            if spec.any_of:
                op["x-permissions-any-of"] = True
        if spec.roles:
            op["x-roles"] = list(spec.roles)

        parameters: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": schema}
            for name, schema in operation.path_params.items()
        ]
        query = schema_of(spec.query, "validation")
        if query is not None:
            parameters += _query_parameters(schemas, query)
        for name, schema, about in spec.extra.get("query_parameters", ()):
            parameters.append(
                {"name": name, "in": "query", "required": False, "schema": schema, "description": about}
            )
        if _takes_tenant_header(spec):
            parameters.append({"$ref": "#/components/parameters/TenantHeader"})
        if parameters:
            op["parameters"] = parameters

        body = schema_of(spec.body, "validation")
        if body is not None:
            # parse_body reads a request without a body as ``{}``: optional when it is an object
            # with no required field (a union of shapes, ``anyOf``, always needs a body).
            resolved = _resolve(schemas, body)
            optional = resolved.get("type") == "object" and not resolved.get("required")
            op["requestBody"] = {
                "required": not optional,
                "content": {"application/json": {"schema": body}},
            }
        elif spec.body_media_type:
            op["requestBody"] = {
                "required": True,
                "content": {spec.body_media_type: {"schema": {"type": "string", "format": "binary"}}},
            }
        errors = statuses_of(spec, path_params=bool(operation.path_params))

        status = spec.status
        success: dict[str, Any] = {"description": _success_text(status)}
        response = schema_of(spec.response, "serialization")
        if response is not None:
            success["content"] = {"application/json": {"schema": response}}
        elif spec.media_type:
            success["content"] = {spec.media_type: {"schema": {"type": "string"}}}
        responses: dict[str, Any] = {str(status): success}
        extra = dict(spec.responses)
        for code in sorted(errors | set(extra)):
            if code in extra and code < 400:
                responses[str(code)] = {"description": extra[code]}
            elif code in extra:
                responses[str(code)] = {
                    "description": extra[code],
                    "content": {_PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                }
                headers = _error_headers(code)
                if headers:
                    responses[str(code)]["headers"] = headers
            elif code in _ERRORS:
                responses[str(code)] = _error_ref(code)
        op["responses"] = responses
        op["security"] = [{"bearerAuth": []}] if spec.secured else []
        paths.setdefault(operation.path, {})[operation.method] = op

    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    document: dict[str, Any] = {"openapi": "3.1.0", "info": info}
    if servers:
        document["servers"] = [dict(s) for s in servers]
    document["tags"] = [{"name": t} for t in tags_seen]
    document["paths"] = paths
    document["components"] = {
        "schemas": schemas,
        "responses": _error_components(),
        "parameters": {
            "TenantHeader": {
                "name": "X-Tenant-ID",
                "in": "header",
                "required": False,
                "description": "Tenant id or slug; the token's tenant when absent.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 100},
            }
        },
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "The `access_token` from `POST /auth/login`.",
            }
        },
    }
    return document


def _success_text(status: int) -> str:
    return {
        200: "OK",
        201: "Created",
        202: "Accepted",
        204: "No Content",
    }.get(status, "Success")
