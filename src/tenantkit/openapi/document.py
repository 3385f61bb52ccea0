"""Build an OpenAPI 3.1 document from Starlette routes.

Each endpoint contributes what :func:`tenantkit.openapi.describe` recorded on
it (bodies, responses, query models) and what the ``requires_*`` guards
recorded in ``__tenantkit_guard__`` (authentication, permissions, roles).
Pydantic models become ``components.schemas``; every operation lists the
problem+json errors it can answer.
"""

from __future__ import annotations

import copy
import functools
import inspect
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.routing import BaseRoute, Mount, Route

from tenantkit.openapi.schemas import (
    AuditPage,
    DeadLetterPage,
    Problem,
    RequeuedJobOut,
)

__all__ = ["GUARD_ATTRIBUTE", "REF_TEMPLATE", "downgrade_to_30", "openapi_document"]

#: Attribute the ``requires_*`` guards set on the endpoints they wrap.
GUARD_ATTRIBUTE = "__tenantkit_guard__"
#: Where pydantic's references point in the document.
REF_TEMPLATE = "#/components/schemas/{model}"

_DESCRIPTION_ATTRIBUTE = "__tenantkit_openapi__"
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

#: Shared error responses, referenced from operations as ``#/components/responses/<name>``.
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "Malformed JSON, or no tenant could be determined for the request."),
    401: ("Unauthorized", "Missing, invalid, expired or revoked bearer token (`WWW-Authenticate: Bearer`)."),
    403: (
        "Forbidden",
        "Not allowed: missing permission, suspended tenant, or a tenant the token is not bound to.",
    ),
    404: ("NotFound", "Not found (or another tenant's)."),
    409: ("Conflict", "Conflicts with the current state."),
    413: ("ContentTooLarge", "The body is larger than the limit, or JSON nested too deeply."),
    415: ("UnsupportedMediaType", "The body is not `application/json`."),
    422: ("UnprocessableContent", "Invalid fields; `errors` lists each one."),
    423: ("Locked", "The account is locked after repeated failures (`Retry-After`)."),
    429: ("TooManyRequests", "Rate limited (`Retry-After`)."),
    503: ("ServiceUnavailable", "A backing service is unavailable (`Retry-After`)."),
}

#: Descriptions of tenantkit routes whose modules carry no ``describe`` decorator, by route name.
_BUILTIN: dict[str, dict[str, Any]] = {
    "audit:list": {
        "summary": "List the tenant's audit events",
        "response": AuditPage,
        "tags": ["audit"],
        "query_parameters": [
            ("action", {"type": "string", "maxLength": 64}, "Exact action, or a prefix ending in `.*`."),
            ("actor_id", {"type": "string", "format": "uuid"}, "Only events by this user."),
            ("since", {"type": "string", "format": "date-time"}, "Events at or after this time."),
            ("until", {"type": "string", "format": "date-time"}, "Events before this time."),
            ("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "Page size."),
            ("cursor", {"type": "string"}, "`next_cursor` of the previous page."),
        ],
        "responses": {422: "An unknown or invalid query parameter."},
    },
    "jobs:dead-letters": {
        "summary": "List dead-lettered jobs",
        "response": DeadLetterPage,
        "tags": ["jobs"],
        "query_parameters": [
            ("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "Page size."),
            ("cursor", {"type": "string"}, "`next_cursor` of the previous page."),
        ],
        "responses": {422: "An invalid `limit`."},
    },
    "jobs:requeue": {
        "summary": "Requeue a dead-lettered job",
        "response": RequeuedJobOut,
        "status": 202,
        "tags": ["jobs"],
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
    endpoint: Any
    name: str | None
    multi: bool
    path_params: dict[str, dict[str, Any]] = field(default_factory=dict)


def _template(path: str) -> tuple[str, dict[str, dict[str, Any]]]:
    params: dict[str, dict[str, Any]] = {}

    def replace(match: re.Match[str]) -> str:
        name, converter = match.group(1), match.group(2) or "str"
        params[name] = dict(_CONVERTERS.get(converter, {"type": "string"}))
        return "{" + name + "}"

    return _PARAM.sub(replace, path), params


def _unwrap(endpoint: Any) -> Any:
    while isinstance(endpoint, functools.partial):
        endpoint = endpoint.func
    return endpoint


def _walk(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[_Operation]:
    for route in routes:
        if isinstance(route, Mount):
            yield from _walk(route.routes or (), prefix + route.path)
        elif isinstance(route, Route) and route.include_in_schema:
            path, params = _template(prefix + route.path)
            endpoint = _unwrap(route.endpoint)
            if inspect.isclass(endpoint):
                methods = [m for m in _METHODS if callable(getattr(endpoint, m, None))]
                for method in methods:
                    yield _Operation(
                        path, method, getattr(endpoint, method), route.name, len(methods) > 1, params
                    )
            else:
                methods = [m.lower() for m in sorted(route.methods or {"GET"}) if m.lower() in _METHODS]
                for method in methods:
                    yield _Operation(path, method, endpoint, route.name, len(methods) > 1, params)


def _description_of(operation: _Operation) -> dict[str, Any]:
    found = getattr(operation.endpoint, _DESCRIPTION_ATTRIBUTE, None)
    if isinstance(found, Mapping):
        return dict(found)
    builtin = _BUILTIN.get(operation.name or "")
    return dict(builtin) if builtin is not None else {}


def _guard_of(endpoint: Any) -> dict[str, Any]:
    found = getattr(endpoint, GUARD_ATTRIBUTE, None)
    return dict(found) if isinstance(found, Mapping) else {}


def _docstring(endpoint: Any) -> tuple[str | None, str | None]:
    doc = inspect.getdoc(endpoint)
    if not doc:
        return None, None
    first, _, rest = doc.partition("\n")
    return first.strip() or None, rest.strip() or None


def _operation_id(operation: _Operation, taken: set[str]) -> str:
    if operation.name:
        base = re.sub(r"[^A-Za-z0-9_]+", "_", operation.name).strip("_")
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


def _permissions_text(guard: Mapping[str, Any]) -> str | None:
    lines = []
    permissions = list(guard.get("permissions", ()))
    if permissions:
        codes = ", ".join(f"`{p}`" for p in permissions)
        if len(permissions) == 1:
            lines.append(f"**Requires permission** {codes}.")
        elif guard.get("any_of"):
            lines.append(f"**Requires any of the permissions** {codes}.")
        else:
            lines.append(f"**Requires all of the permissions** {codes}.")
    roles = list(guard.get("roles", ()))
    if roles:
        lines.append(
            f"**Requires the role** {' or '.join(f'`{r}`' for r in roles)} (or a higher built-in role)."
        )
    if not lines and guard.get("auth"):
        lines.append("**Requires authentication** (any signed-in user).")
    return "\n\n".join(lines) or None


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


def _collect_models(
    descriptions: Iterable[Mapping[str, Any]],
) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    pairs: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(Problem, "serialization"): None}
    for description in descriptions:
        for key, mode in _MODEL_KEYS:
            model = description.get(key)
            if isinstance(model, type) and issubclass(model, BaseModel):
                pairs[(model, mode)] = None
    return list(pairs)


def _resolve(schemas: Mapping[str, Any], ref_or_schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = ref_or_schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        resolved: Mapping[str, Any] = schemas[ref.rsplit("/", 1)[-1]]
        return resolved
    return ref_or_schema


def _query_parameters(schemas: Mapping[str, Any], schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    model = _resolve(schemas, schema)
    required = set(model.get("required", ()))
    parameters = []
    for name, prop in model.get("properties", {}).items():
        prop = dict(prop)
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
    descriptions = [_description_of(op) for op in operations]
    key_map, top = models_json_schema(_collect_models(descriptions), ref_template=REF_TEMPLATE)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))

    def schema_of(model: Any, mode: JsonSchemaMode) -> dict[str, Any] | None:
        if isinstance(model, type) and issubclass(model, BaseModel):
            return dict(key_map[(model, mode)])
        return None

    paths: dict[str, dict[str, Any]] = {}
    taken: set[str] = set()
    tags_seen: dict[str, None] = {}
    for operation, desc in zip(operations, descriptions, strict=True):
        guard = _guard_of(operation.endpoint)
        first, rest = _docstring(operation.endpoint)
        summary = desc.get("summary") or first or (operation.name or operation.path).replace("_", " ")
        tags = list(desc.get("tags") or [_default_tag(operation.path)])
        tags_seen.update(dict.fromkeys(tags))
        secured = bool(guard.get("auth")) or (bool(desc) and not desc.get("public", False))
        needs_tenant = bool(guard.get("permissions") or guard.get("roles") or (secured and guard))

        op: dict[str, Any] = {
            "operationId": _operation_id(operation, taken),
            "summary": summary,
            "tags": tags,
        }
        text = "\n\n".join(t for t in (rest, _permissions_text(guard)) if t)
        if text:
            op["description"] = text
        if guard.get("permissions"):
            op["x-permissions"] = list(guard["permissions"])
            if guard.get("any_of"):
                op["x-permissions-any-of"] = True
        if guard.get("roles"):
            op["x-roles"] = list(guard["roles"])

        parameters: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": schema}
            for name, schema in operation.path_params.items()
        ]
        query = schema_of(desc.get("query"), "validation")
        if query is not None:
            parameters += _query_parameters(schemas, query)
        for name, schema, about in desc.get("query_parameters", ()):
            parameters.append(
                {"name": name, "in": "query", "required": False, "schema": schema, "description": about}
            )
        if needs_tenant:
            parameters.append({"$ref": "#/components/parameters/TenantHeader"})
        if parameters:
            op["parameters"] = parameters

        errors: set[int] = {401, 429}
        body = schema_of(desc.get("body"), "validation")
        if body is not None:
            optional = not _resolve(schemas, body).get("required")
            op["requestBody"] = {
                "required": not optional,
                "content": {"application/json": {"schema": body}},
            }
            errors |= {400, 413, 415, 422}
        elif desc.get("body_media_type"):
            op["requestBody"] = {
                "required": True,
                "content": {desc["body_media_type"]: {"schema": {"type": "string", "format": "binary"}}},
            }
            errors |= {413, 415}
        if query is not None or desc.get("query_parameters"):
            errors.add(422)
        if operation.path_params:
            errors.add(404)
        if secured:
            errors.add(403)
        if needs_tenant:
            errors |= {400, 403, 404}

        status = int(desc.get("status", 200))
        success: dict[str, Any] = {"description": desc.get("success") or _success_text(status)}
        response = schema_of(desc.get("response"), "serialization")
        if response is not None:
            success["content"] = {"application/json": {"schema": response}}
        elif desc.get("media_type"):
            success["content"] = {desc["media_type"]: {"schema": {"type": "string"}}}
        responses: dict[str, Any] = {str(status): success}
        extra = {int(code): str(text) for code, text in dict(desc.get("responses", {})).items()}
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
        op["security"] = [{"bearerAuth": []}] if secured else []
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


def _downgrade_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_downgrade_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _downgrade_schema(value) for key, value in node.items()}
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            del out[key]
            if len(rest) == 1 and "$ref" not in rest[0]:
                out = {**rest[0], **out}
            elif rest:
                out["allOf" if len(rest) == 1 else key] = rest
            out["nullable"] = True
    kind = out.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) < len(kind):
            out["nullable"] = True
        if len(kinds) == 1:
            out["type"] = kinds[0]
        else:
            del out["type"]
            out["anyOf"] = [{"type": k} for k in kinds]
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if isinstance(out.get("examples"), list):
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    for key, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(key), int | float) and not isinstance(out.get(key), bool):
            out[plain] = out[key]
            out[key] = True
    return out


def downgrade_to_30(document: Mapping[str, Any]) -> dict[str, Any]:
    """A best-effort OpenAPI 3.0.3 rendering of a 3.1 ``document`` for older viewers.

    The bundled Swagger UI (4.x) renders only 3.0 documents; nullable types,
    ``const`` and numeric exclusive bounds are rewritten to their 3.0 forms.
    """
    out = copy.deepcopy(dict(document))
    out["openapi"] = "3.0.3"
    out.pop("jsonSchemaDialect", None)
    out.pop("webhooks", None)
    info = dict(out.get("info", {}))
    info.pop("summary", None)
    out["info"] = info
    components = dict(out.get("components", {}))
    components["schemas"] = _downgrade_schema(components.get("schemas", {}))
    components["parameters"] = _downgrade_schema(components.get("parameters", {}))
    out["components"] = components
    paths: dict[str, Any] = {}
    for path, item in out.get("paths", {}).items():
        paths[path] = {}
        for method, op in item.items():
            op = dict(op)
            if "parameters" in op:
                op["parameters"] = _downgrade_schema(op["parameters"])
            if "requestBody" in op:
                op["requestBody"] = _downgrade_schema(op["requestBody"])
            op["responses"] = _downgrade_schema(op["responses"])
            paths[path][method] = op
    out["paths"] = paths
    return out
