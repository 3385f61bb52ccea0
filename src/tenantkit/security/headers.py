"""Pure-ASGI security response headers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantkit.security.paths import PathPrefixes

__all__ = ["DEFAULT_CSP", "HSTS", "SecurityHeaders", "SecurityHeadersMiddleware"]

DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
"""A policy for a JSON API under which a self-hosted Swagger UI (``/api-docs``) still works."""

HSTS = "max-age=63072000; includeSubDomains"

_NO_STORE = (b"cache-control", b"no-store")


class SecurityHeaders:
    """The hardening headers, prebuilt once, and the rule that adds them to a response.

    Adds ``X-Content-Type-Options: nosniff``, ``Referrer-Policy``,
    ``X-Frame-Options: DENY``, ``Content-Security-Policy`` (with
    ``frame-ancestors 'none'``), ``Cross-Origin-Opener-Policy: same-origin``,
    ``Strict-Transport-Security`` when ``hsts`` is on, and ``Cache-Control:
    no-store`` under ``no_store_prefixes`` (token responses must not be cached),
    never replacing a header the endpoint set.

    Args:
        hsts: Send ``Strict-Transport-Security`` (the kit turns it off in development).
        csp: The ``Content-Security-Policy``; ``None`` sends none.
        referrer_policy: The ``Referrer-Policy`` value.
        no_store_prefixes: Path prefixes whose responses get ``Cache-Control: no-store``.
        extra: More headers to add (same no-overwrite rule).
    """

    def __init__(
        self,
        *,
        hsts: bool = True,
        csp: str | None = DEFAULT_CSP,
        referrer_policy: str = "no-referrer",
        no_store_prefixes: Iterable[str] = ("/auth",),
        extra: Mapping[str, str] | None = None,
    ) -> None:
        headers = {
            "x-content-type-options": "nosniff",
            "referrer-policy": referrer_policy,
            "x-frame-options": "DENY",
            "cross-origin-opener-policy": "same-origin",
        }
        if csp:
            headers["content-security-policy"] = csp
        if hsts:
            headers["strict-transport-security"] = HSTS
        for name, value in (extra or {}).items():
            headers[name.lower()] = value
        self.headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self._no_store = PathPrefixes(no_store_prefixes)
        self.no_store_prefixes = self._no_store.prefixes
        # Prebuilt for the hot path: the headers to add (plain and no-store) and their names.
        self._plain = tuple(self.headers)
        self._no_store_headers = (*self._plain, _NO_STORE)
        self._names = frozenset(name for name, _ in self._no_store_headers)

    def for_path(self, path: str) -> tuple[tuple[bytes, bytes], ...]:
        """The headers a response to ``path`` gets (a prebuilt tuple, nothing allocated)."""
        return self._no_store_headers if path in self._no_store else self._plain

    def add(self, headers: list[tuple[bytes, bytes]], extra: tuple[tuple[bytes, bytes], ...]) -> None:
        """Append ``extra`` (from :meth:`for_path`) to ``headers``, skipping names already set."""
        present = {name.lower() for name, _ in headers}
        if present.isdisjoint(self._names):
            headers.extend(extra)
        else:
            headers.extend((name, value) for name, value in extra if name not in present)


class SecurityHeadersMiddleware:
    """:class:`SecurityHeaders` as a middleware of its own (the kit runs it inside its edge pass).

    Args:
        app: The next ASGI app.
        hsts: As :class:`SecurityHeaders`.
        csp: As :class:`SecurityHeaders`.
        referrer_policy: As :class:`SecurityHeaders`.
        no_store_prefixes: As :class:`SecurityHeaders`.
        extra: As :class:`SecurityHeaders`.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        hsts: bool = True,
        csp: str | None = DEFAULT_CSP,
        referrer_policy: str = "no-referrer",
        no_store_prefixes: Iterable[str] = ("/auth",),
        extra: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        self.policy = SecurityHeaders(
            hsts=hsts,
            csp=csp,
            referrer_policy=referrer_policy,
            no_store_prefixes=no_store_prefixes,
            extra=extra,
        )
        self.headers = self.policy.headers
        self.no_store_prefixes = self.policy.no_store_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policy
        extra = policy.for_path(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                policy.add(headers, extra)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
