"""Pure-ASGI ``Host`` header allowlist answering problem+json."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from tenantkit.errors import problem_response

__all__ = ["TrustedHostMiddleware"]


class TrustedHostMiddleware:
    """Refuse requests whose ``Host`` is not allowed (400 problem+json).

    Patterns are host names (``api.example.com``), a leading wildcard
    (``*.example.com`` matches every subdomain and the domain itself) or ``*``
    (everything: the middleware does nothing). Ports are ignored.

    Args:
        app: The next ASGI app.
        allowed_hosts: The accepted host patterns.
    """

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        hosts = [h.strip().lower() for h in allowed_hosts if h.strip()]
        self.allow_any = "*" in hosts
        self.exact = frozenset(h for h in hosts if not h.startswith("*."))
        self.suffixes = tuple(h[1:] for h in hosts if h.startswith("*."))

    def allowed(self, host: str) -> bool:
        """Whether the ``Host`` header value ``host`` is accepted."""
        host = host.strip().lower()
        if host.startswith("["):
            host = host[: host.find("]") + 1]
        else:
            host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        if not host:
            return False
        return host in self.exact or any(host.endswith(s) or host == s[1:] for s in self.suffixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allow_any or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = ""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
                break
        if self.allowed(host):
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await problem_response(400, "Invalid host header.")(scope, receive, send)
        else:
            await send({"type": "websocket.close", "code": 1008})
