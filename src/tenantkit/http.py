"""Request parsing and response helpers shared by every router."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, TypeVar

import pydantic
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

__all__ = ["json_response", "parse_body", "path_uuid", "problem_exception_handlers", "validation_errors"]

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)

logger = logging.getLogger("tenantkit.errors")


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


def validation_errors(exc: pydantic.ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as ``[{"loc", "msg", "type"}]`` without echoing input values."""
    return [
        {"loc": ["body", *error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


async def parse_body(request: Request, model: type[ModelT], *, max_depth: int = 32) -> ModelT:
    """Read a JSON body into ``model``.

    Raises:
        UnsupportedMediaTypeError: the content type is not JSON (415).
        BadRequestError: the body is not valid JSON (400).
        PayloadTooLargeError: nested deeper than ``max_depth`` (413).
        ValidationError: fields are missing, unknown or of the wrong type (422).
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaTypeError("Send the body as application/json.")
    raw = await request.body()
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        raise BadRequestError("The body is not valid JSON.") from None
    if _depth_exceeds(data, max_depth):
        raise PayloadTooLargeError(f"JSON nested deeper than {max_depth} levels.")
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError(validation_errors(exc)) from None


def path_uuid(request: Request, name: str, *, missing: str) -> uuid.UUID:
    """The UUID path parameter ``name``; a malformed one is a 404 (``missing``) like an absent one."""
    try:
        return uuid.UUID(str(request.path_params[name]))
    except ValueError:
        raise NotFoundError(missing) from None


def json_response(data: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response for pydantic models or plain data."""
    if isinstance(data, pydantic.BaseModel):
        content = data.model_dump_json().encode()
        return Response(content, status_code, headers=headers, media_type="application/json")
    return JSONResponse(data, status_code, headers=headers)


async def _problem_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return exc.to_response()


async def _http_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return problem_response(exc.status_code, exc.detail, headers=exc.headers)


async def _unavailable_handler(request: Request, exc: Exception) -> Response:
    logger.error("backing service unavailable: %s", type(exc).__name__)
    return problem_response(
        503, "A backing service is temporarily unavailable; retry shortly.", headers={"Retry-After": "5"}
    )


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
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - without the redis extra
        pass
    else:
        kinds += [RedisConnectionError, RedisTimeoutError]
    return kinds


def problem_exception_handlers() -> dict[Any, Any]:
    """Exception handlers rendering tenantkit errors, HTTP errors and outages (503) as problem+json."""
    handlers: dict[Any, Any] = {ProblemError: _problem_handler, HTTPException: _http_handler}
    handlers.update(dict.fromkeys(_outage_exceptions(), _unavailable_handler))
    return handlers
