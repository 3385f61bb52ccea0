"""Digests of bearer secrets: what is stored in place of a refresh, reset or invitation token.

These secrets are 256 random bits, so one SHA-256 (fast, fixed length) is the
right tool: a slow password hash adds nothing against a search space that
large, and bcrypt would truncate at 72 bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["digest", "keyed_digest", "new_prefixed_secret", "prefixed_public_id"]


def digest(token: str) -> bytes:
    """The SHA-256 digest stored in place of a bearer secret."""
    return hashlib.sha256(token.encode()).digest()


def keyed_digest(key: bytes, token: str) -> bytes:
    """HMAC-SHA256 of ``token`` under a server key: what is stored for recovery codes and API keys.

    A stolen table alone does not allow an offline search: the key is not in it.
    """
    return hmac.new(key, token.encode(), hashlib.sha256).digest()


_HEX = frozenset("0123456789abcdef")


def new_prefixed_secret(prefix: str) -> tuple[str, str]:
    """A new ``<prefix><16 hex>_<secret>`` credential (API keys, SCIM tokens): ``(public_id, value)``.

    The public id finds the stored row; the whole value is what gets a keyed digest.
    """
    public_id = secrets.token_hex(8)
    return public_id, f"{prefix}{public_id}_{secrets.token_urlsafe(32)}"


def prefixed_public_id(value: str, prefix: str) -> str | None:
    """The public id of a well-formed ``<prefix><16 hex>_<secret>`` credential, else ``None`` (no lookup)."""
    if not value.startswith(prefix):
        return None
    public_id, _, secret = value[len(prefix) :].partition("_")
    if len(public_id) == 16 and _HEX.issuperset(public_id) and 32 <= len(secret) <= 64:
        return public_id
    return None
