"""Shared helpers for benchmarks: raw ASGI driving, timing, JSON results."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message

RESULTS = Path(__file__).parent / "results"


def scope_for(
    path: str, headers: list[tuple[bytes, bytes]] | None = None, method: str = "GET"
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench"), *(headers or [])],
        "client": ("127.0.0.1", 12345),
        "server": ("bench", 80),
    }


def request_driver(
    app: ASGIApp, path: str, headers: list[tuple[bytes, bytes]] | None = None
) -> Callable[[], Awaitable[int]]:
    """A coroutine function sending one request to ``app`` in process; returns the status."""
    template = scope_for(path, headers)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def one() -> int:
        status = 0

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(dict(template), receive, send)
        return status

    return one


async def per_request_us(call: Callable[[], Awaitable[int]], *, n: int = 5000, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean µs per call (after a warm-up)."""
    for _ in range(min(n, 500)):
        status = await call()
    assert status == 200, f"benchmark endpoint answered {status}"
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(n):
            await call()
        samples.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(samples)


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "python": platform.python_version(), "machine": platform.machine(), **data}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
