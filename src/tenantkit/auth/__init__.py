"""Authentication: password hashing, access and refresh tokens, sessions and revocation."""

from __future__ import annotations

from tenantkit.auth.keys import KeySet
from tenantkit.auth.passwords import PasswordHasher
from tenantkit.auth.service import AuthService, TokenPair
from tenantkit.auth.tokens import AccessTokens

__all__ = ["AccessTokens", "AuthService", "KeySet", "PasswordHasher", "TokenPair"]
