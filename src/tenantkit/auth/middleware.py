"""Pure-ASGI authentication: verify the bearer token and its session on every request.

A warm request (token seen before, session answer cached) does no I/O. A
token that is present but invalid, expired or revoked is answered 401 with
``WWW-Authenticate: Bearer`` at once, except on the paths where a stale
header must not block the way back in (login, refresh, register, password
reset), where it is ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from tenantkit.auth.identity import Authenticator
from tenantkit.context import Principal, _principal
from tenantkit.errors import PermissionDeniedError, ProblemError

__all__ = ["Authentication", "AuthenticationMiddleware"]

#: Methods a read-only impersonation token may use.
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


class Authentication:
    """Who is calling: the bearer token turned into the principal, or the refusal.

    Args:
        authenticator: Turns the ``Authorization`` header into the principal.
        access: Published in ``scope["state"]["access"]`` for the permission guards.
        optional_paths: Paths where an invalid token is ignored instead of refused.
        optional_prefixes: Path prefixes where it is ignored too: routes that
            authenticate a credential of their own (``/scim/v2/``: SCIM tokens).
    """

    def __init__(
        self,
        authenticator: Authenticator,
        *,
        access: Any = None,
        optional_paths: Iterable[str] = (),
        optional_prefixes: Iterable[str] = (),
    ) -> None:
        self.authenticator = authenticator
        self.access = access
        self.optional_paths = frozenset(optional_paths)
        self.optional_prefixes = tuple(optional_prefixes)

    async def __call__(self, scope: Scope, state: dict[str, Any]) -> Principal | None:
        """Set ``state["principal"]`` (and the context variable) from the credential.

        The credential is the ``Authorization`` header (an access token, or an
        API key as ``Bearer tk_...``), else the ``X-API-Key`` header.

        Raises:
            ProblemError: the credential is invalid, expired or revoked (401), except on
                ``optional_paths``, where the request goes on anonymous.
        """
        state["principal"] = None
        state["access"] = self.access
        authorization = api_key = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
            if name == b"x-api-key":
                api_key = value.decode("latin-1")
        if authorization is None and api_key is None:
            return None
        try:
            if authorization is not None:
                principal = await self.authenticator.authenticate(authorization)
            else:
                assert api_key is not None
                principal = await self.authenticator.authenticate_api_key(api_key.strip(" \t"))
        except ProblemError as error:
            path = scope["path"]
            if error.status == 401 and (
                path in self.optional_paths
                or (self.optional_prefixes and path.startswith(self.optional_prefixes))
            ):
                return None
            raise
        if principal.read_only and scope.get("method", "GET") not in _READS:
            raise PermissionDeniedError("This impersonation is read-only.")
        state["principal"] = principal
        _principal.set(principal)
        return principal


class AuthenticationMiddleware:
    """:class:`Authentication` as a middleware of its own: sets ``scope["state"]["principal"]``.

    (The kit runs the same step inside its identity pass.)

    Args:
        app: The next ASGI app.
        authenticator: Turns the ``Authorization`` header into the principal.
        access: Published in ``scope["state"]["access"]`` for the permission guards.
        optional_paths: Paths where an invalid token is ignored instead of refused.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticator: Authenticator,
        access: Any = None,
        optional_paths: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.authentication = Authentication(authenticator, access=access, optional_paths=optional_paths)
        self.authenticator = authenticator
        self.access = access
        self.optional_paths = self.authentication.optional_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        try:
            await self.authentication(scope, scope.setdefault("state", {}))
        except ProblemError as error:
            if scope["type"] == "http":
                await error.to_response()(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        await self.app(scope, receive, send)
