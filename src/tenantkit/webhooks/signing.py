"""Standard Webhooks signatures: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``.

The signing secret is ``whsec_`` followed by the base64 of 32 random bytes;
the HMAC key is the decoded bytes. A receiver checks the three headers
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` with
:func:`verify` (or any Standard Webhooks library): the signature must match
one of the space-separated ``v1,...`` entries and the timestamp must be
within ``tolerance`` seconds of now, which bounds replays.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

from tenantkit.errors import TenantKitError

__all__ = [
    "DEFAULT_TOLERANCE",
    "SECRET_PREFIX",
    "WebhookVerificationError",
    "generate_secret",
    "sign",
    "verify",
]

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300
SECRET_BYTES = 32
_MAX_SIGNATURE_HEADER = 4096


class WebhookVerificationError(TenantKitError):
    """A webhook request's headers or signature do not verify."""


def generate_secret() -> str:
    """A new signing secret: ``"whsec_" + base64(32 random bytes)``."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret is not whsec_ followed by base64") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Sign one delivery the Standard Webhooks way.

    Args:
        secret: The endpoint's ``whsec_...`` secret (the prefix is optional).
        msg_id: The ``webhook-id`` header value.
        timestamp: The ``webhook-timestamp`` header value (UNIX seconds).
        body: The exact request body.

    Returns:
        ``"v1,<base64 signature>"``, the ``webhook-signature`` header value.

    Raises:
        ValueError: ``secret`` is not base64.
    """
    digest = _digest(_key(secret), msg_id, int(timestamp), body)
    return "v1," + base64.b64encode(digest).decode("ascii")


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        # plain dicts are case-sensitive; Starlette / aiohttp headers are not
        for key, candidate in headers.items():
            if key.lower() == name:
                value = candidate
                break
    if not value:
        raise WebhookVerificationError(f"missing {name} header")
    return value


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> None:
    """Check a received webhook; raise unless it is authentic and fresh.

    Args:
        secret: The endpoint's ``whsec_...`` secret.
        headers: The request headers (any mapping; names are matched case-insensitively).
        body: The raw request body, exactly as received (not re-serialised JSON).
        tolerance: Largest accepted distance, in seconds, between
            ``webhook-timestamp`` and now, in either direction.
        now: The current UNIX time (tests); defaults to ``time.time()``.

    Raises:
        WebhookVerificationError: a header is missing or malformed, the
            timestamp is too old or too far in the future, or no signature matches.
    """
    msg_id = _header(headers, "webhook-id")
    raw_timestamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    if not (raw_timestamp.isascii() and raw_timestamp.isdigit()) or len(raw_timestamp) > 12:
        raise WebhookVerificationError("invalid webhook-timestamp header")
    timestamp = int(raw_timestamp)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance window")
    if len(signatures) > _MAX_SIGNATURE_HEADER:
        raise WebhookVerificationError("webhook-signature header is too long")
    try:
        expected = _digest(_key(secret), msg_id, timestamp, body)
    except ValueError:
        raise WebhookVerificationError("the webhook secret is invalid") from None
    matched = False
    for entry in signatures.split(" "):
        version, _, encoded = entry.partition(",")
        if version != "v1" or not encoded:
            continue
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        # keep comparing after a match so timing does not reveal which entry matched
        matched |= hmac.compare_digest(candidate, expected)
    if not matched:
        raise WebhookVerificationError("no matching signature")
