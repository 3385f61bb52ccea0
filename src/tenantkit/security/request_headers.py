"""Refuse request headers that name nothing: an empty ``X-Tenant-ID`` is a 400, not "no tenant"."""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tenantkit.errors import BadRequestError

__all__ = ["EmptyHeaderMiddleware", "EmptyHeaders"]


class EmptyHeaders:
    """Which request headers must not be sent empty, and the answer when one is.

    Args:
        headers: Header names to check (case-insensitive).
    """

    def __init__(self, headers: tuple[str, ...]) -> None:
        self.names = frozenset(h.lower().encode("latin-1") for h in headers)

    @staticmethod
    def is_empty(value: bytes) -> bool:
        """Whether a header value names nothing (empty or only whitespace)."""
        return not value.strip(b" \t")

    def refusal(self, name: bytes) -> Response:
        """The 400 problem+json for the empty header ``name``."""
        header = name.decode("latin-1")
        return BadRequestError(f"The {header} header is empty; name a tenant or omit it.").to_response()


class EmptyHeaderMiddleware:
    """Answer 400 problem+json when one of ``headers`` is sent empty (or only whitespace).

    A client that sends ``X-Tenant-ID:`` meant to name a tenant and named none;
    treating it as absent would silently act in the token's tenant instead.
    (The kit runs the same check, :class:`EmptyHeaders`, inside its edge pass.)

    Args:
        app: The next ASGI app.
        headers: Header names to check (case-insensitive).
    """

    def __init__(self, app: ASGIApp, *, headers: tuple[str, ...]) -> None:
        self.app = app
        self.check = EmptyHeaders(headers)
        self.names = self.check.names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name in self.names and self.check.is_empty(value):
                    await self.check.refusal(name)(scope, receive, send)
                    return
        await self.app(scope, receive, send)
