"""Access-token verification against the attacks in SECURITY.md (Python API)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tenantkit import ExpiredTokenError, InvalidTokenError, Settings
from tenantkit.auth.keys import KeySet
from tenantkit.auth.tokens import AccessTokens

SECRET = "a" * 48
OLD_SECRET = "b" * 48


def codec(**settings: Any) -> AccessTokens:
    values = {"jwt_secret": SECRET, "env": "test", **settings}
    s = Settings.load(**values)
    return AccessTokens(KeySet.from_settings(s), issuer=s.jwt_issuer, audience=s.jwt_audience, leeway=0)


def issue(tokens: AccessTokens) -> str:
    token, _ = tokens.issue(
        user_id=uuid.uuid4(), tenant_id=uuid.uuid4(), session_id=uuid.uuid4(), role="USER"
    )
    return token


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": str(uuid.uuid4()),
        "tid": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "role": "ADMIN",
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 600,
        "iss": "tenantkit",
        "aud": "tenantkit",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def forge(
    tokens: AccessTokens,
    payload: dict[str, Any],
    *,
    key: Any = None,
    headers: dict[str, Any] | None = None,
    algorithm: str = "HS256",
) -> str:
    kid = tokens.keys.current.kid
    hdr = {"kid": kid, "typ": "at+jwt", **(headers or {})}
    return jwt.encode(payload, key if key is not None else SECRET.encode(), algorithm=algorithm, headers=hdr)


def test_round_trip_and_required_claims() -> None:
    tokens = codec()
    principal = tokens.verify(issue(tokens))
    assert principal.role == "USER"
    header = jwt.get_unverified_header(issue(tokens))
    assert header["kid"] == tokens.keys.current.kid
    assert header["typ"] == "at+jwt"
    payload = jwt.decode(issue(tokens), options={"verify_signature": False})
    assert {"sub", "tid", "sid", "role", "jti", "iat", "exp", "iss", "aud"} <= set(payload)


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(alg: str) -> None:
    tokens = codec()
    header = b64(json.dumps({"alg": alg, "typ": "at+jwt", "kid": tokens.keys.current.kid}).encode())
    body = b64(json.dumps(claims()).encode())
    for token in (f"{header}.{body}.", f"{header}.{body}.c2ln"):
        with pytest.raises(InvalidTokenError):
            tokens.verify(token)


def test_algorithm_off_the_allowlist_is_refused() -> None:
    tokens = codec()
    with pytest.raises(InvalidTokenError):
        tokens.verify(forge(tokens, claims(), key=(SECRET * 2).encode(), algorithm="HS512"))


def test_tampered_signature_and_payload_are_refused() -> None:
    tokens = codec()
    token = issue(tokens)
    head, body, sig = token.split(".")
    flipped = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
    with pytest.raises(InvalidTokenError):
        tokens.verify(f"{head}.{body}.{flipped}")
    evil = b64(json.dumps(claims(role="SUPER_ADMIN")).encode())
    with pytest.raises(InvalidTokenError):
        tokens.verify(f"{head}.{evil}.{sig}")


@pytest.mark.parametrize("suffix", ["=", "==", " ", "\n"])
def test_re_encoded_copies_of_a_valid_token_are_refused(suffix: str) -> None:
    tokens = codec()
    token = issue(tokens)
    tokens.verify(token)  # the original is fine (and now cached)
    with pytest.raises(InvalidTokenError):
        tokens.verify(token + suffix)
    head, body, sig = token.split(".")
    with pytest.raises(InvalidTokenError):
        tokens.verify(f"{head}=.{body}.{sig}")


def test_wrong_secret_is_refused() -> None:
    tokens = codec()
    with pytest.raises(InvalidTokenError):
        tokens.verify(forge(tokens, claims(), key=b"c" * 48))


@pytest.mark.parametrize("kid", ["' OR 1=1--", "../../dev/null", "", "x" * 300])
def test_hostile_kid_is_refused(kid: str) -> None:
    tokens = codec()
    with pytest.raises(InvalidTokenError):
        tokens.verify(forge(tokens, claims(), headers={"kid": kid}))


def test_unknown_crit_is_refused_and_jku_is_ignored() -> None:
    tokens = codec()
    with pytest.raises(InvalidTokenError):
        tokens.verify(forge(tokens, claims(), headers={"crit": ["exp-ext"], "exp-ext": 1}))
    # jku/jwk/x5u never change which key verifies: with our key the token is fine,
    # with an attacker key it is refused even if the header points at that key.
    tokens.verify(forge(tokens, claims(), headers={"jku": "http://127.0.0.1:1/jwks"}))
    with pytest.raises(InvalidTokenError):
        tokens.verify(
            forge(tokens, claims(), key=b"d" * 48, headers={"jwk": {"kty": "oct", "k": b64(b"d" * 48)}})
        )


@pytest.mark.parametrize("missing", ["exp", "sub", "jti", "tid", "sid", "iss", "aud", "iat"])
def test_missing_required_claim_is_refused(missing: str) -> None:
    tokens = codec()
    with pytest.raises(InvalidTokenError):
        tokens.verify(forge(tokens, claims(**{missing: None})))


def test_expired_and_future_nbf_are_refused() -> None:
    tokens = codec()
    with pytest.raises(ExpiredTokenError):
        tokens.verify(forge(tokens, claims(exp=int(time.time()) - 10)))
    with pytest.raises(InvalidTokenError):
        tokens.verify(forge(tokens, claims(nbf=int(time.time()) + 600)))


@pytest.mark.parametrize("iss", ["tenant", "tenantki", "tenantkitx", "", "TENANTKIT"])
def test_issuer_must_match_exactly(iss: Any) -> None:
    tokens = codec()
    with pytest.raises(InvalidTokenError):
        tokens.verify(forge(tokens, claims(iss=iss)))


@pytest.mark.parametrize("aud", ["other", "tenant", ["other"], ""])
def test_wrong_audience_is_refused(aud: Any) -> None:
    tokens = codec()
    with pytest.raises(InvalidTokenError):
        tokens.verify(forge(tokens, claims(aud=aud)))


def test_wrong_typ_is_refused() -> None:
    tokens = codec()
    for typ in ["JWT", "refresh", None]:
        headers = {"typ": typ} if typ else {"typ": None}
        with pytest.raises(InvalidTokenError):
            tokens.verify(forge(tokens, claims(), headers=headers))


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!!.@@@.###",
        "eyJhbGciOiJIUzI1NiJ9.%%%.sig",
        "x" * (1024 * 1024),
        "tkr_" + "A" * 43,
    ],
)
def test_garbage_is_refused_not_crashing(garbage: str) -> None:
    with pytest.raises(InvalidTokenError):
        codec().verify(garbage)


def test_duplicate_json_keys_are_refused() -> None:
    tokens = codec()
    header = b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": tokens.keys.current.kid}).encode())
    payload_text = json.dumps(claims())[:-1] + ', "role": "SUPER_ADMIN"}'
    body = b64(payload_text.encode())
    import hashlib
    import hmac

    sig = b64(hmac.new(SECRET.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest())
    with pytest.raises(InvalidTokenError):
        tokens.verify(f"{header}.{body}.{sig}")


def test_key_rotation_keeps_old_tokens_until_the_old_key_is_retired() -> None:
    old = codec(jwt_secret=OLD_SECRET)
    token = issue(old)
    rotated = codec(jwt_secret=SECRET, jwt_previous_secrets=OLD_SECRET)
    assert rotated.verify(token)
    assert (
        jwt.get_unverified_header(issue(rotated))["kid"] == rotated.keys.current.kid != old.keys.current.kid
    )
    retired = codec(jwt_secret=SECRET)
    with pytest.raises(InvalidTokenError):
        retired.verify(token)


def test_cache_still_enforces_expiry() -> None:
    tokens = codec(access_token_ttl=30)
    tokens.leeway = 0
    token = forge(tokens, claims(exp=int(time.time()) + 1))
    assert tokens.verify(token)
    assert token in tokens._cache
    time.sleep(1.2)
    with pytest.raises(ExpiredTokenError):
        tokens.verify(token)


def _write_key(tmp_path: Path, algorithm: str) -> tuple[Path, Any]:
    if algorithm == "EdDSA":
        private: Any = ed25519.Ed25519PrivateKey.generate()
    elif algorithm == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / f"{algorithm}.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path, private


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256", "RS256"])
def test_asymmetric_algorithms_publish_jwks_and_refuse_confusion(tmp_path: Path, algorithm: str) -> None:
    path, private = _write_key(tmp_path, algorithm)
    tokens = codec(jwt_algorithm=algorithm, jwt_private_key_file=str(path), jwt_secret=None)
    token = issue(tokens)
    assert tokens.verify(token)
    jwks = tokens.keys.jwks()
    assert jwks is not None
    assert jwks["keys"][0]["kid"] == tokens.keys.current.kid
    assert "d" not in jwks["keys"][0]  # never the private part
    public = private.public_key()
    for encoding, fmt in [
        (serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        (serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
    ]:
        public_bytes = public.public_bytes(encoding, fmt)
        header = b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": tokens.keys.current.kid}).encode())
        body = b64(json.dumps(claims()).encode())
        import hashlib
        import hmac

        sig = b64(hmac.new(public_bytes, f"{header}.{body}".encode(), hashlib.sha256).digest())
        with pytest.raises(InvalidTokenError):
            tokens.verify(f"{header}.{body}.{sig}")


def test_hs256_has_no_jwks() -> None:
    assert codec().keys.jwks() is None


def test_development_secret_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    settings = Settings.load(env="development", data_dir=tmp_path)
    first = KeySet.from_settings(settings)
    second = KeySet.from_settings(settings)
    assert first.current.kid == second.current.kid
    secret_file = tmp_path / "jwt_secret"
    assert secret_file.stat().st_mode & 0o077 == 0
    assert len(secret_file.read_bytes()) >= 32
