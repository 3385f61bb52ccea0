"""Request bodies over ``max_body_bytes`` → 413, declared or streamed; local uploads are exempt."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from tenantkit.files import LocalStorage, new_key
from tests.helpers import assert_problem

LIMIT = 1024


async def test_declared_content_length_over_the_limit_is_413_before_the_endpoint_runs(
    served: Callable[..., Any],
) -> None:
    app = await served(max_body_bytes=LIMIT)
    client = await app.client()
    response = await client.post("/echo", content=b"x" * (LIMIT + 1))
    body = assert_problem(response, 413)
    assert str(LIMIT) in str(body["detail"])
    assert "x-request-id" in response.headers
    assert app.written == []
    ok = await client.post("/echo", content=b"x" * LIMIT)
    assert ok.status_code == 200 and ok.json() == {"size": LIMIT}


async def test_over_limit_json_on_a_real_route_is_413(served: Callable[..., Any]) -> None:
    app = await served(max_body_bytes=LIMIT)
    client = await app.client()
    response = await client.post(
        "/auth/register",
        json={"email": "a@example.com", "password": "p" * 2000, "tenant_name": "A"},
    )
    assert_problem(response, 413)


async def test_streamed_chunked_body_over_the_limit_is_413_and_nothing_is_written(
    served: Callable[..., Any],
) -> None:
    app = await served(max_body_bytes=LIMIT)
    client = await app.client()

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 300

    response = await client.post("/echo", content=chunks())
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)
    assert app.written == []

    async def small() -> AsyncIterator[bytes]:
        yield b"z" * 500

    ok = await client.post("/echo", content=small())
    assert ok.status_code == 200 and app.written == [b"z" * 500]


async def test_a_lying_content_length_does_not_get_past_the_limit(served: Callable[..., Any]) -> None:
    app = await served(max_body_bytes=LIMIT)
    # Drive the ASGI app directly: declare 10 bytes, send far more.
    sent: list[dict[str, Any]] = []
    messages = [
        {"type": "http.request", "body": b"a" * 800, "more_body": True},
        {"type": "http.request", "body": b"b" * 800, "more_body": False},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/echo",
        "raw_path": b"/echo",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"content-length", b"10")],
        "client": ("203.0.113.9", 1),
        "server": ("testserver", 80),
    }
    await app.app(scope, receive, send)
    assert sent[0]["status"] == 413
    assert app.written == []


async def test_local_uploads_are_exempt_and_keep_their_own_size_check(served: Callable[..., Any]) -> None:
    app = await served(max_body_bytes=LIMIT)
    storage = app.kit.storage
    assert isinstance(storage, LocalStorage)
    size = LIMIT * 3
    key = new_key(uuid.uuid4())
    upload = await storage.presign_upload(key, content_type="application/pdf", size=size, expires_in=60)
    client = await app.client()
    response = await client.put(upload.url, content=b"%PDF" + b"0" * (size - 4), headers=upload.headers)
    assert response.status_code == 204, response.text
    info = await storage.head(key)
    assert info is not None and info.size == size
    # The route still refuses more than it signed.
    again = await storage.presign_upload(
        new_key(uuid.uuid4()), content_type="application/pdf", size=10, expires_in=60
    )
    assert_problem(await client.put(again.url, content=b"0" * 11, headers=again.headers), 413)
