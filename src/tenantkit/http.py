"""Request parsing and response helpers shared by every router."""

from __future__ import annotations

import json
import logging
import math
import re
import uuid
from typing import Annotated, Any, TypeVar

import orjson
import pydantic
from pydantic import AfterValidator
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tenantkit.errors import (
    BadRequestError,
    NotFoundError,
    PayloadTooLargeError,
    ProblemError,
    UnsupportedMediaTypeError,
    ValidationError,
    problem_response,
)
from tenantkit.routing import allowed_methods

__all__ = [
    "BIGINT_MAX",
    "NO_STORE",
    "ORJSONResponse",
    "PatchModel",
    "RequestModel",
    "SafeText",
    "absent_not_null",
    "check_text",
    "edge_errors",
    "json_response",
    "parse_body",
    "parse_query",
    "path_uuid",
    "problem_exception_handlers",
    "validation_errors",
]

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)

logger = logging.getLogger("tenantkit.errors")

#: Headers of a response that holds a secret or a user's private data: never cached anywhere.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


#: The widest integer any column holds (PostgreSQL ``bigint``); JSON integers beyond it are refused.
BIGINT_MAX = 2**63 - 1
_NUL_OR_SURROGATE = re.compile("[\x00\ud800-\udfff]")


def check_text(value: str) -> str:
    """``value`` unchanged, or ``ValueError`` when it holds a NUL byte or an unpaired surrogate.

    Neither can be stored in a PostgreSQL text column (nor encoded as UTF-8), so
    they are refused at the edge as a 422 naming the field, never a database error.
    """
    if _NUL_OR_SURROGATE.search(value):
        raise ValueError("must not contain NUL characters or unpaired surrogates")
    return value


#: A string that any database can store: no NUL, no unpaired surrogate (422 otherwise).
SafeText = Annotated[str, AfterValidator(check_text)]


def _out_of_range(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not -BIGINT_MAX - 1 <= value <= BIGINT_MAX
    return isinstance(value, float) and not math.isfinite(value)


def edge_errors(data: Any, loc: tuple[str | int, ...] = ("body",)) -> list[dict[str, Any]]:
    """What no model may receive, wherever it sits in decoded JSON: one error per offending value.

    Strings (and object keys) with NUL or unpaired surrogates, integers beyond
    ``bigint``, and non-finite numbers (``NaN``, ``Infinity``, ``1e999``).
    """
    errors: list[dict[str, Any]] = []
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(data, loc)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if _NUL_OR_SURROGATE.search(item):
                errors.append(
                    {
                        "loc": list(where),
                        "msg": "must not contain NUL characters or unpaired surrogates",
                        "type": "string_unstorable",
                    }
                )
        elif _out_of_range(item):
            errors.append({"loc": list(where), "msg": "number out of range", "type": "number_out_of_range"})
        elif isinstance(item, dict):
            for key, value in item.items():
                where_key = (*where, key if not _NUL_OR_SURROGATE.search(key) else "<invalid key>")
                if _NUL_OR_SURROGATE.search(key):
                    errors.append(
                        {
                            "loc": list(where_key),
                            "msg": "keys must not contain NUL characters or unpaired surrogates",
                            "type": "string_unstorable",
                        }
                    )
                    continue
                stack.append((value, where_key))
        elif isinstance(item, list):
            stack.extend((value, (*where, index)) for index, value in enumerate(item))
    errors.reverse()
    return errors


def _refuse_unstorable(value: Any) -> Any:
    if edge_errors(value, ()):
        raise ValueError("must not contain NUL characters, unpaired surrogates or out-of-range numbers")
    return value


class RequestModel(pydantic.BaseModel):
    """Base of request bodies and query models: unknown fields refused, every field checked at the edge.

    A NUL byte or an unpaired surrogate in any string, an integer beyond
    ``bigint`` or a non-finite number is a 422 naming the field, whichever
    field and however deeply nested.

    Example:
        ```python
        class ProductIn(RequestModel):
            sku: Annotated[str, StringConstraints(max_length=64)]
        ```
    """

    model_config = pydantic.ConfigDict(extra="forbid")

    @pydantic.field_validator("*", mode="before")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return _refuse_unstorable(value)


def validation_errors(exc: pydantic.ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as ``[{"loc", "msg", "type"}]`` without echoing input values."""
    return [
        {"loc": ["body", *error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


async def parse_body(request: Request, model: type[ModelT], *, max_depth: int = 32) -> ModelT:
    """Read a JSON body into ``model``; a request with no body and no content type reads as ``{}``.

    Raises:
        UnsupportedMediaTypeError: the content type is not JSON (415).
        BadRequestError: the body is not valid JSON (400).
        PayloadTooLargeError: nested deeper than ``max_depth`` (413).
        ValidationError: fields are missing, unknown or of the wrong type (422);
            any string holding NUL or an unpaired surrogate, any integer beyond
            ``bigint`` or non-finite number, whatever the model (422 naming it).
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type and not await request.body():
        raw = b"{}"  # no body at all: the model decides (422 when a field is required)
    elif content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaTypeError("Send the body as application/json.")
    else:
        raw = await request.body()
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        raise BadRequestError("The body is not valid JSON.") from None
    if _depth_exceeds(data, max_depth):
        raise PayloadTooLargeError(f"JSON nested deeper than {max_depth} levels.")
    unstorable = edge_errors(data)
    if unstorable:
        raise ValidationError(unstorable)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError(validation_errors(exc)) from None


def parse_query(request: Request, model: type[ModelT]) -> ModelT:
    """The query string as ``model`` (a :class:`RequestModel`: unknown parameters are refused).

    A parameter given twice keeps its last value.

    Raises:
        BadRequestError: a malformed ``cursor`` (400, as for any tampered cursor).
        ValidationError: 422 naming every bad parameter as ``["query", name]``.
    """
    try:
        return model.model_validate(dict(request.query_params))
    except pydantic.ValidationError as exc:
        errors = [
            {"loc": ["query", *error["loc"]], "msg": error["msg"], "type": error["type"]}
            for error in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        if any(error["loc"][1:2] == ["cursor"] for error in errors):
            raise BadRequestError("The cursor is invalid; use next_cursor from a previous page.") from None
        raise ValidationError(errors) from None


def path_uuid(request: Request, name: str, *, missing: str) -> uuid.UUID:
    """The UUID path parameter ``name``; a malformed one is a 404 (``missing``) like an absent one."""
    try:
        return uuid.UUID(str(request.path_params[name]))
    except ValueError:
        raise NotFoundError(missing) from None


class ORJSONResponse(JSONResponse):
    """Starlette's ``JSONResponse`` rendered with orjson (compact UTF-8, as Starlette writes it).

    Values orjson cannot encode (integers beyond 64 bits) fall back to the
    standard library, so a response never fails where ``JSONResponse`` would not.
    """

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except TypeError:
            return super().render(content)


def json_response(data: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response for pydantic models or plain data (orjson for the latter)."""
    if isinstance(data, pydantic.BaseModel):
        content = data.model_dump_json().encode()
        return Response(content, status_code, headers=headers, media_type="application/json")
    return ORJSONResponse(data, status_code, headers=headers)


async def _problem_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return exc.to_response()


async def _http_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    headers = exc.headers
    if exc.status_code == 405:
        # Starlette names only the first route matching the path; several routes may share it.
        app = request.scope.get("app")
        methods = allowed_methods(getattr(app, "routes", ()), request.scope)
        if methods:
            headers = {**(headers or {}), "Allow": ", ".join(methods)}
    return problem_response(exc.status_code, exc.detail, headers=headers)


async def _unavailable_handler(request: Request, exc: Exception) -> Response:
    logger.error("backing service unavailable: %s", type(exc).__name__)
    return problem_response(
        503, "A backing service is temporarily unavailable; retry shortly.", headers={"Retry-After": "5"}
    )


async def _database_error_handler(request: Request, exc: Exception) -> Response:
    """A driver error: 503 when it is a lost connection (the pool is invalidated), else a plain 500."""
    if getattr(exc, "connection_invalidated", False):
        return await _unavailable_handler(request, exc)
    logger.error("database error: %s", type(exc).__name__, exc_info=exc)
    return problem_response(500, "An unexpected error occurred.")


def _outage_exceptions() -> list[type[Exception]]:
    from sqlalchemy import exc as sa_exc

    kinds: list[type[Exception]] = [
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        sa_exc.TimeoutError,
        ConnectionError,
        TimeoutError,
    ]
    try:
        from redis.exceptions import ClusterDownError, RedisClusterException, TryAgainError
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - without the redis extra
        pass
    else:  # a Redis Cluster failing over: slots down or moving, no node reachable
        kinds += [
            RedisConnectionError,
            RedisTimeoutError,
            ClusterDownError,
            TryAgainError,
            RedisClusterException,
        ]
    return kinds


def problem_exception_handlers() -> dict[Any, Any]:
    """Exception handlers rendering tenantkit errors, HTTP errors and outages (503) as problem+json."""
    handlers: dict[Any, Any] = {ProblemError: _problem_handler, HTTPException: _http_handler}
    handlers.update(dict.fromkeys(_outage_exceptions(), _unavailable_handler))
    from sqlalchemy.exc import DBAPIError

    handlers[DBAPIError] = _database_error_handler  # subclasses above (outages) keep their handler
    return handlers


def absent_not_null(schema: dict[str, Any]) -> None:
    """In a PATCH body's JSON schema: optional fields may be left out, never be ``null``."""
    for prop in schema.get("properties", {}).values():
        options = prop.get("anyOf")
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            del prop["anyOf"]
            prop.pop("default", None)
            if len(rest) == 1:
                prop.update(rest[0])
            else:
                prop["anyOf"] = rest


class PatchModel(RequestModel):
    """Base of ``PATCH`` bodies: every field may be left out, none may be ``null``.

    Declare fields as ``T | None = None`` (``None`` meaning "leave as it is");
    an explicit ``null`` is a 422, and the schema says so.
    """

    model_config = pydantic.ConfigDict(extra="forbid", json_schema_extra=absent_not_null)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = [name for name, value in data.items() if value is None]
            if nulls:
                raise ValidationError(
                    [
                        {"loc": ["body", n], "msg": "may be left out, not null", "type": "value_error"}
                        for n in nulls
                    ]
                )
        return data
