"""Opaque refresh tokens: generation, digests, and the sealed successor.

A refresh token is ``tkr_`` followed by 256 random bits (base64url), so secret
scanners can recognise leaked ones. Only its SHA-256 digest is stored.

When a token is rotated, its successor is stored encrypted (AES-256-GCM) under
a key derived (HKDF-SHA256) from the *parent* token. A duplicate refresh of
the parent inside the grace window can then be answered with the very same
successor, while the database alone (without the parent token) reveals
nothing usable.
"""

from __future__ import annotations

import os
import re
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tenantkit.digests import digest

__all__ = ["REFRESH_PREFIX", "digest", "looks_like_refresh_token", "new_refresh_token", "open_box", "seal"]

REFRESH_PREFIX = "tkr_"
_SHAPE = re.compile(r"^tkr_[A-Za-z0-9_-]{43}$")


def new_refresh_token() -> str:
    """A fresh refresh token (256 bits of entropy)."""
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


def looks_like_refresh_token(token: str) -> bool:
    """Cheap shape check before any database work."""
    return bool(_SHAPE.match(token))


def _key(parent: str) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=b"tenantkit-refresh-successor-v1").derive(
        parent.encode()
    )


def seal(parent: str, successor: str) -> bytes:
    """Encrypt ``successor`` so that only the holder of ``parent`` can read it."""
    nonce = os.urandom(12)
    return nonce + AESGCM(_key(parent)).encrypt(nonce, successor.encode(), b"successor")


def open_box(parent: str, box: bytes) -> str | None:
    """Decrypt a sealed successor; ``None`` if ``parent`` is not the right token."""
    try:
        return AESGCM(_key(parent)).decrypt(box[:12], box[12:], b"successor").decode()
    except (InvalidTag, ValueError):
        return None
