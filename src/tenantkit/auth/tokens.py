"""Access tokens: short-lived JWTs, strictly verified, with a cache of verified tokens.

Every decode failure collapses into :class:`~tenantkit.errors.InvalidTokenError`
(or ``ExpiredTokenError``); nothing from PyJWT or ``json`` leaks out. Before
PyJWT sees a token it must be small, have exactly three segments, a JSON
header and payload without duplicate keys, ``typ: at+jwt``, the configured
``alg``, a known ``kid`` and no ``crit``. ``jwk``/``jku``/``x5u`` headers are
never used. ``exp iat sub jti tid sid iss aud`` are required.

A token already verified is served from a bounded cache keyed by the exact
token string; expiry is still checked on every hit.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from tenantkit.auth.keys import KeySet
from tenantkit.context import Principal
from tenantkit.errors import ExpiredTokenError, InvalidTokenError

__all__ = ["ACCESS_TOKEN_TYPE", "RESERVED_CLAIMS", "AccessTokens"]

ACCESS_TOKEN_TYPE = "at+jwt"
MAX_TOKEN_LENGTH = 4096
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
RESERVED_CLAIMS = frozenset(
    {"sub", "tid", "sid", "role", "jti", "iat", "exp", "nbf", "iss", "aud", "act", "ro"}
)
_REQUIRED = ["exp", "iat", "sub", "jti", "tid", "sid", "iss", "aud"]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _segment(data: str) -> dict[str, Any]:
    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    value = json.loads(raw, object_pairs_hook=_no_duplicates)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


class AccessTokens:
    """Issue and verify access tokens.

    Args:
        keys: Signing and verification keys.
        issuer: ``iss`` to set and require (compared exactly).
        audience: ``aud`` to set and require.
        ttl: Lifetime in seconds.
        leeway: Clock skew tolerated on ``exp``/``iat``/``nbf``, seconds.
        cache_size: Verified tokens kept in memory (0 disables the cache).
    """

    def __init__(
        self,
        keys: KeySet,
        *,
        issuer: str,
        audience: str,
        ttl: int = 900,
        leeway: int = 5,
        cache_size: int = 10_000,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl
        self.leeway = leeway
        self.cache_size = cache_size
        self._cache: dict[str, Principal] = {}

    def issue(
        self,
        *,
        user_id: uuid.UUID,
        tenant_id: uuid.UUID,
        session_id: uuid.UUID,
        role: str,
        extra_claims: dict[str, Any] | None = None,
        ttl: int | None = None,
        actor_id: uuid.UUID | None = None,
        read_only: bool = False,
        issued_at: int | None = None,
        token_id: str | None = None,
    ) -> tuple[str, int]:
        """A signed access token and its lifetime in seconds.

        ``actor_id`` marks an impersonation token: the ``act`` claim (RFC 8693)
        names who really acts; ``read_only`` adds ``ro``. Neither can come from
        ``extra_claims`` (plugins), whose reserved names are dropped.
        ``issued_at`` and ``token_id`` pin ``iat`` and ``jti`` (the refresh
        rotation re-issues the very same token for a duplicate in its grace window).
        """
        now = int(time.time()) if issued_at is None else issued_at
        lifetime = min(ttl, self.ttl) if ttl is not None and actor_id is None else (ttl or self.ttl)
        claims: dict[str, Any] = {k: v for k, v in (extra_claims or {}).items() if k not in RESERVED_CLAIMS}
        if actor_id is not None:
            claims["act"] = {"sub": str(actor_id)}
            if read_only:
                claims["ro"] = True
        claims.update(
            sub=str(user_id),
            tid=str(tenant_id),
            sid=str(session_id),
            role=role,
            jti=token_id or uuid.uuid4().hex,
            iat=now,
            exp=now + lifetime,
            iss=self.issuer,
            aud=self.audience,
        )
        key = self.keys.current
        token = jwt.encode(
            claims,
            key.signing,
            algorithm=key.algorithm,
            headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE},
        )
        return token, lifetime

    def verify(self, token: str) -> Principal:
        """The principal a valid token names.

        Raises:
            ExpiredTokenError: the token expired.
            InvalidTokenError: anything else is wrong with it.
        """
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at + self.leeway < time.time():
                self._cache.pop(token, None)
                raise ExpiredTokenError("The access token expired.")
            return cached
        principal = self._verify(token)
        if self.cache_size:
            if len(self._cache) >= self.cache_size:
                self._evict()
            self._cache[token] = principal
        return principal

    def _evict(self) -> None:
        now = time.time()
        expired = [t for t, p in self._cache.items() if p.expires_at + self.leeway < now]
        for token in expired:
            del self._cache[token]
        while len(self._cache) >= self.cache_size:
            del self._cache[next(iter(self._cache))]

    def clear_cache(self) -> None:
        """Forget every verified token (call when the key set changes)."""
        self._cache.clear()

    def forget(self, token: str) -> None:
        self._cache.pop(token, None)

    def _verify(self, token: str) -> Principal:
        if len(token) > MAX_TOKEN_LENGTH or not _COMPACT_JWS.fullmatch(token):
            # Only unpadded base64url segments (RFC 7515): a padded or otherwise
            # re-encoded copy of a valid token is a different string, refused.
            raise InvalidTokenError("Malformed access token.")
        header_part, payload_part, _ = token.split(".")
        try:
            header = _segment(header_part)
            _segment(payload_part)
        except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
            raise InvalidTokenError("Malformed access token.") from None
        kid = header.get("kid")
        if (
            header.get("typ") != ACCESS_TOKEN_TYPE
            or header.get("alg") != self.keys.algorithm
            or "crit" in header
            or not isinstance(kid, str)
            or kid not in self.keys.by_kid
        ):
            raise InvalidTokenError("Invalid access token.")
        key = self.keys.by_kid[kid]
        try:
            claims = jwt.decode(
                token,
                key.verifying,
                algorithms=[key.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": _REQUIRED, "strict_aud": True},
            )
        except jwt.ExpiredSignatureError:
            raise ExpiredTokenError("The access token expired.") from None
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            raise InvalidTokenError("Invalid access token.") from None
        try:
            user_id, tenant_id, session_id = (uuid.UUID(claims[k]) for k in ("sub", "tid", "sid"))
            # canonical spellings: caches and invalidation messages key on these strings
            claims.update(sub=str(user_id), tid=str(tenant_id), sid=str(session_id))
            return Principal(
                user_id=user_id,
                tenant_id=tenant_id,
                session_id=session_id,
                role=str(claims.get("role", "")),
                token_id=str(claims["jti"]),
                expires_at=float(claims["exp"]),
                claims=claims,
            )
        except (ValueError, TypeError, AttributeError):
            raise InvalidTokenError("Invalid access token.") from None


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login, refresh or tenant switch returns."""

    access_token: str
    expires_in: int
    refresh_token: str
    session_id: uuid.UUID

    def as_dict(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
        }
