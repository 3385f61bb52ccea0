"""Digests of bearer secrets: what is stored in place of a refresh, reset or invitation token.

These secrets are 256 random bits, so one SHA-256 (fast, fixed length) is the
right tool: a slow password hash adds nothing against a search space that
large, and bcrypt would truncate at 72 bytes.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["digest", "keyed_digest"]


def digest(token: str) -> bytes:
    """The SHA-256 digest stored in place of a bearer secret."""
    return hashlib.sha256(token.encode()).digest()


def keyed_digest(key: bytes, token: str) -> bytes:
    """HMAC-SHA256 of ``token`` under a server key: what is stored for recovery codes and API keys.

    A stolen table alone does not allow an offline search: the key is not in it.
    """
    return hmac.new(key, token.encode(), hashlib.sha256).digest()
