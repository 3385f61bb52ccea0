"""Pure-ASGI request body size limit (413 problem+json)."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantkit.errors import PayloadTooLargeError
from tenantkit.security.paths import PathPrefixes

__all__ = ["BodyLimit", "BodySizeLimitMiddleware", "BodyTooLarge"]

#: HTTP versions where a request with neither ``Content-Length`` nor
#: ``Transfer-Encoding`` has no body (RFC 9112 §6.3); HTTP/2 and 3 may stream one anyway.
_UNFRAMED_IS_EMPTY = frozenset({"1.0", "1.1"})


class BodyTooLarge(PayloadTooLargeError):
    """Raised from ``receive`` when a streamed body passes the limit."""


class BodyLimit:
    """The request body size limit: what to do with a request, and the counting ``receive``.

    A declared ``Content-Length`` over the limit is refused before the endpoint
    runs (:meth:`refuses`). A chunked (or lying) body is counted while the
    endpoint reads it (:meth:`counting`): the read that crosses the limit raises
    :class:`BodyTooLarge`, so the endpoint never sees the whole body and
    nothing it would have written is written. An HTTP/1 request with neither
    header has no body (RFC 9112) and needs no counting.

    Args:
        max_body_bytes: The largest body accepted.
        exempt_prefixes: Path prefixes that enforce their own limits (local
            file uploads check their signed, declared size).
    """

    def __init__(self, max_body_bytes: int, *, exempt_prefixes: Iterable[str] = ()) -> None:
        self.max_body_bytes = max_body_bytes
        self._exempt = PathPrefixes(p for p in exempt_prefixes if p.strip("/"))  # never the root
        self.exempt_prefixes = self._exempt.prefixes

    def exempt(self, path: str) -> bool:
        """Whether ``path`` checks its own size."""
        return path in self._exempt

    def refuses(self, content_length: bytes | None) -> bool:
        """Whether the first declared ``Content-Length`` is over the limit."""
        return (
            content_length is not None
            and content_length.isdigit()
            and int(content_length) > self.max_body_bytes
        )

    @staticmethod
    def needs_counting(scope: Scope, framed: bool) -> bool:
        """Whether a body may follow (``framed``: ``Content-Length`` or ``Transfer-Encoding`` was sent)."""
        return framed or scope.get("http_version") not in _UNFRAMED_IS_EMPTY

    def counting(self, receive: Receive) -> Receive:
        """``receive`` that raises :class:`BodyTooLarge` once more than the limit has arrived."""
        limit = self.max_body_bytes
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(f"The request body is larger than {limit} bytes.")
            return message

        return limited_receive

    def refusal(self) -> Response:
        """The 413 problem+json (the connection is closed: the rest of the body is not read)."""
        error = PayloadTooLargeError(
            f"The request body is larger than {self.max_body_bytes} bytes.", headers={"Connection": "close"}
        )
        return error.to_response()


class BodySizeLimitMiddleware:
    """:class:`BodyLimit` as a middleware of its own: 413 to bodies over ``max_body_bytes``.

    (The kit runs the same limit inside its edge pass.)

    Args:
        app: The next ASGI app.
        max_body_bytes: The largest body accepted.
        exempt_prefixes: Path prefixes that enforce their own limits.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, exempt_prefixes: Iterable[str] = ()) -> None:
        self.app = app
        self.limit = BodyLimit(max_body_bytes, exempt_prefixes=exempt_prefixes)
        self.max_body_bytes = max_body_bytes
        self.exempt_prefixes = self.limit.exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit
        if scope["type"] != "http" or limit.exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        framed = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not framed and limit.refuses(value):
                    await limit.refusal()(scope, receive, send)
                    return
                framed = True
            elif name == b"transfer-encoding":
                framed = True
        if not limit.needs_counting(scope, framed):
            await self.app(scope, receive, send)  # no body can follow: nothing to count
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limit.counting(receive), tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await limit.refusal()(scope, receive, send)
