"""Starlette's ``CORSMiddleware`` with problem+json refusals of preflight requests."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware as StarletteCORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tenantkit.errors import problem_response

__all__ = ["CORS_EXPOSE_HEADERS", "CORSMiddleware", "CORSPolicy"]

CORS_EXPOSE_HEADERS = ("X-Request-ID", "Retry-After", "RateLimit", "RateLimit-Policy")
"""Response headers a browser script may read."""


class CORSMiddleware(StarletteCORSMiddleware):
    """CORS for the configured origins, credentials allowed (unless ``*`` is allowed).

    A refused preflight answers 400 ``application/problem+json`` instead of
    Starlette's plain text.

    Args:
        app: The next ASGI app.
        allow_origins: Exact origins (``https://app.example.com``); ``*`` allows
            every origin, then without credentials.
        allow_headers: Request headers scripts may send.
        allow_methods: Methods scripts may use.
        expose_headers: Response headers scripts may read.
        max_age: Seconds a browser may cache a preflight answer.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        allow_origins: Sequence[str],
        allow_headers: Sequence[str] = ("Authorization", "Content-Type", "X-Tenant-ID", "X-Request-ID"),
        allow_methods: Sequence[str] = ("GET", "POST", "PUT", "PATCH", "DELETE"),
        expose_headers: Sequence[str] = CORS_EXPOSE_HEADERS,
        max_age: int = 600,
    ) -> None:
        super().__init__(
            app,
            allow_origins=allow_origins,
            allow_methods=allow_methods,
            allow_headers=allow_headers,
            allow_credentials="*" not in allow_origins,
            expose_headers=expose_headers,
            max_age=max_age,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        headers = {
            k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")
        }
        detail = bytes(response.body).decode("latin-1") + "."
        return problem_response(400, detail, headers=headers)


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:  # pragma: no cover - never called
    raise RuntimeError("CORSPolicy answers preflights itself; it wraps no app")


class CORSPolicy:
    """The CORS rules of :class:`CORSMiddleware` as a plain object (the kit's edge pass uses it).

    :meth:`preflight` answers a preflight request; :meth:`add` writes the
    headers of a simple response, exactly as the middleware does.

    Args:
        allow_origins: As :class:`CORSMiddleware`.
        allow_headers: As :class:`CORSMiddleware`.
        allow_methods: As :class:`CORSMiddleware`.
        expose_headers: As :class:`CORSMiddleware`.
        max_age: As :class:`CORSMiddleware`.
    """

    def __init__(
        self,
        *,
        allow_origins: Sequence[str],
        allow_headers: Sequence[str] = ("Authorization", "Content-Type", "X-Tenant-ID", "X-Request-ID"),
        allow_methods: Sequence[str] = ("GET", "POST", "PUT", "PATCH", "DELETE"),
        expose_headers: Sequence[str] = CORS_EXPOSE_HEADERS,
        max_age: int = 600,
    ) -> None:
        self.rules = CORSMiddleware(
            _no_app,
            allow_origins=allow_origins,
            allow_headers=allow_headers,
            allow_methods=allow_methods,
            expose_headers=expose_headers,
            max_age=max_age,
        )
        self._explicit_origin_always = self.rules.allow_all_origins and self.rules.allow_credentials

    def preflight(self, scope: Scope) -> Response:
        """The answer to a preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``)."""
        return self.rules.preflight_response(Headers(scope=scope))

    def add(self, headers: list[tuple[bytes, bytes]], origin: str | None) -> None:
        """Write the CORS headers of a simple response into ``headers`` (a raw header list)."""
        mutable = MutableHeaders(raw=headers)
        rules = self.rules
        if origin is not None:
            mutable.update(rules.simple_headers)
            if self._explicit_origin_always or (
                not rules.allow_all_origins and rules.is_allowed_origin(origin=origin)
            ):
                mutable["Access-Control-Allow-Origin"] = origin
        mutable["Vary"] = ", ".join([*mutable.getlist("Vary"), "Origin"])
