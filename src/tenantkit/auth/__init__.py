"""Authentication: passwords, tokens, accounts, sessions and the request's identity."""

from __future__ import annotations

from tenantkit.auth.accounts import Accounts
from tenantkit.auth.identity import Authenticator
from tenantkit.auth.keys import KeySet
from tenantkit.auth.passwords import PasswordHasher
from tenantkit.auth.sessions import Sessions, TokenPair
from tenantkit.auth.tokens import AccessTokens

__all__ = ["AccessTokens", "Accounts", "Authenticator", "KeySet", "PasswordHasher", "Sessions", "TokenPair"]
