"""Refuse request headers that name nothing: an empty ``X-Tenant-ID`` is a 400, not "no tenant"."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from tenantkit.errors import BadRequestError

__all__ = ["EmptyHeaderMiddleware"]


class EmptyHeaderMiddleware:
    """Answer 400 problem+json when one of ``headers`` is sent empty (or only whitespace).

    A client that sends ``X-Tenant-ID:`` meant to name a tenant and named none;
    treating it as absent would silently act in the token's tenant instead.

    Args:
        app: The next ASGI app.
        headers: Header names to check (case-insensitive).
    """

    def __init__(self, app: ASGIApp, *, headers: tuple[str, ...]) -> None:
        self.app = app
        self.names = frozenset(h.lower().encode("latin-1") for h in headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name in self.names and not value.strip(b" \t"):
                    header = name.decode("latin-1")
                    error = BadRequestError(f"The {header} header is empty; name a tenant or omit it.")
                    await error.to_response()(scope, receive, send)
                    return
        await self.app(scope, receive, send)
