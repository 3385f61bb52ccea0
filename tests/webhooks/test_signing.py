"""Standard Webhooks signatures: the published test vector, round trips, tampering."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest

from tenantkit.webhooks.signing import SECRET_PREFIX, WebhookVerificationError, generate_secret, sign, verify

# The test vector published with the Standard Webhooks reference libraries.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def headers(msg_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def test_sign_reproduces_the_standard_webhooks_vector() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_sign_matches_an_independent_hmac_computation() -> None:
    secret = generate_secret()
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = hmac.new(key, b"msg_1.1700000000." + b'{"a":1}', hashlib.sha256).digest()
    assert sign(secret, "msg_1", 1700000000, b'{"a":1}') == "v1," + base64.b64encode(expected).decode()


def test_verify_accepts_the_vector() -> None:
    verify(
        VECTOR_SECRET,
        headers(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE),
        VECTOR_BODY,
        now=VECTOR_TIMESTAMP,
    )


def test_generated_secrets_are_whsec_and_32_random_bytes() -> None:
    first, second = generate_secret(), generate_secret()
    assert first.startswith(SECRET_PREFIX)
    assert len(base64.b64decode(first.removeprefix(SECRET_PREFIX), validate=True)) == 32
    assert first != second


def test_round_trip_with_case_insensitive_header_names() -> None:
    secret, now = generate_secret(), int(time.time())
    body = b'{"type":"order.created"}'
    signature = sign(secret, "msg_abc", now, body)
    verify(
        secret, {"Webhook-Id": "msg_abc", "WEBHOOK-TIMESTAMP": str(now), "Webhook-Signature": signature}, body
    )


@pytest.mark.parametrize("part", ["body", "id", "timestamp", "secret", "signature"])
def test_any_tampering_is_detected(part: str) -> None:
    secret, now = generate_secret(), int(time.time())
    body, msg_id = b'{"amount":"10.00"}', "msg_1"
    signature = sign(secret, msg_id, now, body)
    sent = headers(msg_id, now, signature)
    if part == "body":
        body = b'{"amount":"99.00"}'
    elif part == "id":
        sent["webhook-id"] = "msg_2"
    elif part == "timestamp":
        sent["webhook-timestamp"] = str(now - 1)
    elif part == "secret":
        secret = generate_secret()
    else:
        raw = bytearray(base64.b64decode(signature[3:]))
        raw[0] ^= 1
        sent["webhook-signature"] = "v1," + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(WebhookVerificationError):
        verify(secret, sent, body)


def test_a_list_of_signatures_verifies_when_one_matches() -> None:
    secret, now, body = generate_secret(), int(time.time()), b"{}"
    good = sign(secret, "msg_1", now, body)
    other = sign(generate_secret(), "msg_1", now, body)
    verify(secret, headers("msg_1", now, f"v1,bm9wZQ== {other} {good}"), body)
    with pytest.raises(WebhookVerificationError):
        verify(secret, headers("msg_1", now, f"v1,bm9wZQ== {other}"), body)


def test_other_versions_and_garbage_do_not_count() -> None:
    secret, now, body = generate_secret(), int(time.time()), b"{}"
    digest = sign(secret, "msg_1", now, body)[3:]
    for value in (f"v2,{digest}", f"v1a,{digest}", digest, "v1,", "v1,***"):
        with pytest.raises(WebhookVerificationError):
            verify(secret, headers("msg_1", now, value), body)


@pytest.mark.parametrize("offset", [-301, 301, -10_000])
def test_timestamps_outside_the_tolerance_are_refused(offset: int) -> None:
    secret, now, body = generate_secret(), int(time.time()), b"{}"
    stamp = now + offset
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify(secret, headers("msg_1", stamp, sign(secret, "msg_1", stamp, body)), body)
    verify(secret, headers("msg_1", stamp, sign(secret, "msg_1", stamp, body)), body, tolerance=20_000)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers_are_refused(missing: str) -> None:
    secret, now, body = generate_secret(), int(time.time()), b"{}"
    sent = headers("msg_1", now, sign(secret, "msg_1", now, body))
    del sent[missing]
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify(secret, sent, body)


@pytest.mark.parametrize("stamp", ["-5", "1e9", "12.5", " 17", "9" * 20])
def test_malformed_timestamps_are_refused(stamp: str) -> None:
    secret = generate_secret()
    sent = {"webhook-id": "msg_1", "webhook-timestamp": stamp, "webhook-signature": "v1,AAAA"}
    with pytest.raises(WebhookVerificationError):
        verify(secret, sent, b"{}")


def test_a_secret_that_is_not_base64_is_refused() -> None:
    with pytest.raises(ValueError, match="base64"):
        sign("whsec_not base64!", "msg_1", 1, b"")
