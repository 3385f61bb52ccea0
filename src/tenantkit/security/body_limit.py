"""Pure-ASGI request body size limit (413 problem+json)."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantkit.errors import PayloadTooLargeError
from tenantkit.security.paths import PathPrefixes

__all__ = ["BodySizeLimitMiddleware"]

#: HTTP versions where a request with neither ``Content-Length`` nor
#: ``Transfer-Encoding`` has no body (RFC 9112 §6.3); HTTP/2 and 3 may stream one anyway.
_UNFRAMED_IS_EMPTY = frozenset({"1.0", "1.1"})


class _BodyTooLarge(PayloadTooLargeError):
    """Raised from ``receive`` when a streamed body passes the limit."""


class BodySizeLimitMiddleware:
    """Answer 413 to request bodies larger than ``max_body_bytes``.

    A declared ``Content-Length`` over the limit is refused before the endpoint
    runs. A chunked (or lying) body is counted while the endpoint reads it: the
    read that crosses the limit raises, so the endpoint never sees the whole
    body and nothing it would have written is written. An HTTP/1 request with
    neither header has no body (RFC 9112) and passes through unwrapped.

    Args:
        app: The next ASGI app.
        max_body_bytes: The largest body accepted.
        exempt_prefixes: Path prefixes that enforce their own limits (local
            file uploads check their signed, declared size).
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, exempt_prefixes: Iterable[str] = ()) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._exempt = PathPrefixes(p for p in exempt_prefixes if p.strip("/"))  # never the root
        self.exempt_prefixes = self._exempt.prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._exempt:
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        framed = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not framed and value.isdigit() and int(value) > limit:
                    await self._refuse(scope, receive, send)
                    return
                framed = True
            elif name == b"transfer-encoding":
                framed = True
        if not framed and scope.get("http_version") in _UNFRAMED_IS_EMPTY:
            await self.app(scope, receive, send)  # no body can follow: nothing to count
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(f"The request body is larger than {limit} bytes.")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = PayloadTooLargeError(
            f"The request body is larger than {self.max_body_bytes} bytes.", headers={"Connection": "close"}
        )
        await error.to_response()(scope, receive, send)
