"""The request's identity: turn the credential a request carries into a :class:`Principal`.

One place decides who is calling: a bearer access token (signature, claims
and the session's revocation), or an API key (``Authorization: Bearer tk_...``
or ``X-API-Key: tk_...``).
"""

from __future__ import annotations

from tenantkit.auth.apikeys import API_KEY_PREFIX, ApiKeys
from tenantkit.auth.revocation import RevocationList
from tenantkit.auth.tokens import AccessTokens
from tenantkit.context import Principal
from tenantkit.errors import InvalidTokenError

__all__ = ["Authenticator", "bearer_token"]


def bearer_token(authorization: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value, or 401."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip(" \t")  # optional whitespace only; anything else stays and fails
    if scheme.lower() != "bearer" or not token:
        raise InvalidTokenError("Use 'Authorization: Bearer <access token>'.")
    return token


class Authenticator:
    """Verifies credentials.

    Args:
        tokens: Verifies access tokens (with a bounded cache of tokens already seen).
        revocations: Says whether a token's session has ended.
        api_keys: Verifies API keys (``None``: keys are not accepted).
    """

    def __init__(
        self, tokens: AccessTokens, revocations: RevocationList, api_keys: ApiKeys | None = None
    ) -> None:
        self.tokens = tokens
        self.revocations = revocations
        self.api_keys = api_keys

    async def authenticate(self, authorization: str) -> Principal:
        """The principal behind an ``Authorization`` header value.

        Raises:
            InvalidTokenError: malformed, forged, expired, or its session ended (401).
            ServiceUnavailableError: revocation cannot be checked and the settings fail closed (503).
        """
        token = bearer_token(authorization)
        if token.startswith(API_KEY_PREFIX):
            return await self.authenticate_api_key(token)
        principal = self.tokens.verify(token)
        if await self.revocations.is_revoked(principal.claims.get("sid") or principal.session_id):
            self.tokens.forget(token)
            raise InvalidTokenError("The session has ended.")
        return principal

    async def authenticate_api_key(self, key: str) -> Principal:
        """The principal of an API key (``X-API-Key`` or a ``tk_`` bearer), or 401."""
        if self.api_keys is None:
            raise InvalidTokenError("API keys are not accepted here.")
        return await self.api_keys.authenticate(key)
