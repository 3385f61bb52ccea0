"""Pure-ASGI ``Host`` header allowlist answering problem+json."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tenantkit.errors import problem_response

__all__ = ["TrustedHostMiddleware", "TrustedHosts"]


class TrustedHosts:
    """The ``Host`` allowlist: which ``Host`` header values are accepted.

    Patterns are host names (``api.example.com``), a leading wildcard
    (``*.example.com`` matches every subdomain and the domain itself) or ``*``
    (everything). Ports are ignored.

    Args:
        allowed_hosts: The accepted host patterns.
    """

    def __init__(self, allowed_hosts: Iterable[str]) -> None:
        hosts = [h.strip().lower() for h in allowed_hosts if h.strip()]
        self.allow_any = "*" in hosts
        self.exact = frozenset(h for h in hosts if not h.startswith("*."))
        self.suffixes = tuple(h[1:] for h in hosts if h.startswith("*."))
        self._seen: dict[str, bool] = {}

    def allowed(self, host: str) -> bool:
        """Whether the ``Host`` header value ``host`` is accepted (answers are remembered)."""
        known = self._seen.get(host)
        if known is not None:
            return known
        answer = self._decide(host)
        if len(self._seen) < _MAX_REMEMBERED:  # a flood of made-up hosts cannot grow it without bound
            self._seen[host] = answer
        return answer

    def _decide(self, host: str) -> bool:
        if self.allow_any:
            return True
        host = host.strip().lower()
        if host.startswith("["):
            host = host[: host.find("]") + 1]
        else:
            host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        if not host:
            return False
        return host in self.exact or any(host.endswith(s) or host == s[1:] for s in self.suffixes)

    @staticmethod
    def refusal() -> Response:
        """The answer to a request whose host is not accepted."""
        return problem_response(400, "Invalid host header.")


_MAX_REMEMBERED = 1024


class TrustedHostMiddleware:
    """:class:`TrustedHosts` as a middleware of its own: 400 problem+json for another ``Host``.

    (The kit runs the same check inside its edge pass.)

    Args:
        app: The next ASGI app.
        allowed_hosts: The accepted host patterns.
    """

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = TrustedHosts(allowed_hosts)
        self.allow_any = self.hosts.allow_any
        self.exact = self.hosts.exact
        self.suffixes = self.hosts.suffixes

    def allowed(self, host: str) -> bool:
        """Whether the ``Host`` header value ``host`` is accepted."""
        return self.hosts.allowed(host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allow_any or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = ""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
                break
        if self.hosts.allowed(host):
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await self.hosts.refusal()(scope, receive, send)
        else:
            await send({"type": "websocket.close", "code": 1008})
