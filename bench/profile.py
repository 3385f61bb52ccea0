"""Profile the example app's hot routes on PostgreSQL + Redis, in process (not a benchmark).

Sets up what ``bench.real`` sets up (a throw-away database migrated by the app,
the ``tenantkit_app`` role, a Redis key prefix, a brand with 25 products seeded
over HTTP), then drives ``GET /auth/me`` and ``GET /products?limit=20`` straight
into the ASGI app under :mod:`cProfile`, requests back to back, and prints the
functions that take the time (own time and cumulative) and the wall time per
request. Every request must answer 200: any other status is counted and fails
the run.

    python -m bench.profile [--requests N] [--top N] [PATH ...]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import PG_ADMIN_URL, request_driver
from bench.real_setup import REDIS_URL, SECRET, Server, seed, throwaway

DEFAULT_PATHS = ["/auth/me", "/products?limit=20", "/auth/refresh"]


def rotation_driver(app: Any, refresh_token: str) -> Any:
    """``POST /auth/refresh`` in a chain: each request presents the token the previous one got."""
    import orjson

    from bench.common import scope_for

    template = scope_for("/auth/refresh", [(b"content-type", b"application/json")], method="POST")
    token = refresh_token

    async def one() -> int:
        nonlocal token
        status, body = 0, b""
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {
                "type": "http.request",
                "body": orjson.dumps({"refresh_token": token}),
                "more_body": False,
            }

        async def send(message: dict[str, Any]) -> None:
            nonlocal status, body
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                body += message.get("body", b"")

        await app(dict(template), receive, send)
        if status == 200:
            token = orjson.loads(body)["refresh_token"]
        return status

    return one


async def _profile(
    config: dict[str, Any], token: str, refresh: str, paths: list[str], requests: int, top: int
) -> None:
    from bench.real_servers import example_app

    app = example_app(config)
    headers = [(b"authorization", f"Bearer {token}".encode())]
    async with app.router.lifespan_context(app):
        for path in paths:
            one = (
                rotation_driver(app, refresh)
                if path == "/auth/refresh"
                else request_driver(app, path, headers)
            )
            for _ in range(200):  # warm-up: caches, prepared statements, pool
                status = await one()
                if status != 200:
                    raise RuntimeError(f"{path} answered {status} during warm-up")
            started = time.perf_counter()
            for _ in range(requests):
                await one()
            plain_us = (time.perf_counter() - started) / requests * 1e6
            profiler = cProfile.Profile()
            failures = 0
            profiler.enable()
            for _ in range(requests):
                failures += (await one()) != 200
            profiler.disable()
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out).strip_dirs()
            stats.sort_stats("tottime").print_stats(top)
            stats.sort_stats("cumulative").print_stats(top)
            print(f"== {path}: {plain_us:.0f} µs per request (back to back, no profiler), {failures} non-200")
            print(out.getvalue())
            if failures:
                raise RuntimeError(f"{path}: {failures} of {requests} requests were not 200")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=DEFAULT_PATHS)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="tk-bench-profile-"))
    with throwaway(data_dir) as (database, prefix):
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        host = base.rsplit("@", 1)[-1]
        config: dict[str, Any] = {
            "secret": SECRET,
            "app_url": f"postgresql+asyncpg://tenantkit_app@{host}/{database}",
            "bare_dsn": f"{base}/{database}",
            "redis_url": REDIS_URL,
            "redis_prefix": prefix,
            "data_dir": str(data_dir),
            "bcrypt_rounds": 4,
        }
        server = Server("app", config, data_dir)
        try:
            seeded = seed(server, 0, products=25)
        finally:
            server.stop()
        asyncio.run(
            _profile(config, seeded["token"], seeded["probe_refresh"], args.paths, args.requests, args.top)
        )


if __name__ == "__main__":
    main()
