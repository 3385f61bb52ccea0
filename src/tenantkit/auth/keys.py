"""Signing keys for access tokens: one current key, older ones still accepted, JWKS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from tenantkit.errors import ConfigurationError
from tenantkit.settings import MIN_SECRET_BYTES, Settings

__all__ = ["KeySet", "SigningKey", "development_secret"]


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One key: ``signing`` material (secret or private key) and ``verifying`` material."""

    kid: str
    algorithm: str
    signing: Any
    verifying: Any
    public_jwk: dict[str, Any] | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hmac_kid(secret: bytes) -> str:
    return _b64(hashlib.sha256(b"tenantkit-kid:" + secret).digest())[:16]


def _thumbprint(jwk: dict[str, Any]) -> str:
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
    members = {k: jwk[k] for k in required[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64(hashlib.sha256(canonical).digest())


def _asymmetric_key(path: Path, algorithm: str) -> SigningKey:
    data = path.read_bytes()
    try:
        private: Any = serialization.load_pem_private_key(data, password=None)
        public = private.public_key()
    except ValueError:
        private = None
        public = serialization.load_pem_public_key(data)
    jwk: dict[str, Any]
    if algorithm == "EdDSA" and isinstance(public, ed25519.Ed25519PublicKey):
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    elif algorithm == "ES256" and isinstance(public, ec.EllipticCurvePublicKey):
        if public.curve.name != "secp256r1":
            raise ConfigurationError(f"{path}: ES256 needs a P-256 key")
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    elif algorithm == "RS256" and isinstance(public, rsa.RSAPublicKey):
        if public.key_size < 2048:
            raise ConfigurationError(f"{path}: RS256 needs at least a 2048-bit key")
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    else:
        raise ConfigurationError(f"{path}: not a key for {algorithm}")
    kid = _thumbprint(jwk)
    jwk.update(kid=kid, use="sig", alg=algorithm)
    return SigningKey(kid, algorithm, private, public, jwk)


def development_secret(data_dir: Path) -> bytes:
    """A CSPRNG secret kept in ``data_dir/jwt_secret`` (created 0600 on first use)."""
    path = data_dir / "jwt_secret"
    if path.exists():
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret)
    return secret


class KeySet:
    """The current signing key plus older verification keys, looked up by ``kid``."""

    def __init__(self, current: SigningKey, previous: list[SigningKey] | None = None) -> None:
        self.current = current
        self.algorithm = current.algorithm
        self.by_kid = {key.kid: key for key in [current, *(previous or [])]}

    @classmethod
    def from_settings(cls, settings: Settings) -> KeySet:
        """Build the key set the settings describe (development may generate the secret)."""
        if settings.jwt_algorithm == "HS256":
            if settings.jwt_secret is not None:
                secret = settings.jwt_secret.get_secret_value().encode()
            else:
                secret = development_secret(settings.data_dir)
            if len(secret) < MIN_SECRET_BYTES:
                raise ConfigurationError(f"jwt_secret: must be at least {MIN_SECRET_BYTES} bytes")
            keys = [secret, *(s.get_secret_value().encode() for s in settings.jwt_previous_secrets)]
            current, *older = [SigningKey(_hmac_kid(k), "HS256", k, k) for k in keys]
            return cls(current, older)
        assert settings.jwt_private_key_file is not None
        current = _asymmetric_key(settings.jwt_private_key_file, settings.jwt_algorithm)
        if current.signing is None:
            raise ConfigurationError("jwt_private_key_file: must hold a private key")
        older = [_asymmetric_key(p, settings.jwt_algorithm) for p in settings.jwt_previous_key_files]
        return cls(current, older)

    def derive(self, label: str) -> bytes:
        """A 32-byte key for ``label`` derived from the current signing key material.

        Every instance configured with the same keys derives the same value, so
        signed URLs and similar artefacts verify anywhere.
        """
        material = self.current.signing
        if not isinstance(material, bytes):
            material = material.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        return hmac.new(material, b"tenantkit-derived-key:" + label.encode(), hashlib.sha256).digest()

    def jwks(self) -> dict[str, Any] | None:
        """The public JWK set, or ``None`` for HMAC keys (which must never be published)."""
        if self.algorithm == "HS256":
            return None
        return {"keys": [key.public_jwk for key in self.by_kid.values()]}
