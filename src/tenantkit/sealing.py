"""``Sealer``: secrets encrypted at rest (TOTP secrets, identity-provider client secrets).

AES-256-GCM with a random 96-bit nonce per message; the associated data binds
a sealed value to its owner (a user or tenant id), so a blob copied onto
another row does not open.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["Sealer"]

_VERSION = b"\x01"


class Sealer:
    """Encrypts and decrypts small secrets under one 32-byte key.

    Args:
        key: 32 bytes (``Settings.encryption_key``, or derived from the signing key).
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the sealing key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def from_material(cls, material: bytes) -> Sealer:
        """A sealer keyed by SHA-256 of ``material`` (``TENANTKIT_ENCRYPTION_KEY``, or derived key bytes)."""
        return cls(hashlib.sha256(b"tenantkit-sealing:" + material).digest())

    def seal(self, plaintext: bytes, *, context: bytes) -> bytes:
        """``plaintext`` encrypted and authenticated, bound to ``context``."""
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, context)

    def open(self, sealed: bytes, *, context: bytes) -> bytes | None:
        """The plaintext, or ``None`` when ``sealed`` was altered, is foreign, or ``context`` differs."""
        if len(sealed) < 29 or sealed[:1] != _VERSION:
            return None
        try:
            return self._aead.decrypt(sealed[1:13], sealed[13:], context)
        except InvalidTag:
            return None
