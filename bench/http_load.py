"""Requests/s and p99 over real HTTP: tenantkit's full stack against a bare Starlette app.

Each app runs under uvicorn in its own subprocess on a free loopback port; a
separate load process drives it with N concurrent keep-alive connections for
a bounded time. The tenantkit app serves one protected route (JWT, revocation
check, rate limiting with a budget too large to refuse, tenant resolution,
live permission check, security headers, body limit); the bare app serves
the same JSON. Numbers are reported, never gated on.

    python -m bench.http_load [--concurrency 16] [--duration 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import write_result

SECRET = "bench-secret-" + "x" * 40
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- #
# Server side (runs in a subprocess)
# --------------------------------------------------------------------------- #


def _bare_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"hello": "world"})

    return Starlette(routes=[Route("/hello", hello)])


def _tenantkit_kit(data_dir: Path) -> Any:
    from tenantkit import Settings, TenantKit

    settings = Settings.load(
        env="test",
        jwt_secret=SECRET,
        data_dir=data_dir,
        bcrypt_rounds=4,
        log_level="WARNING",
        rate_limit_api="100000000/minute",
        rate_limit_tenant="100000000/minute",
    )
    return TenantKit(settings, permissions=[("reports.read", "bench")], autoload_plugins=False)


async def _tenantkit_setup(data_dir: Path) -> str:
    """Migrate, create a tenant and an admin, and mint a token (on a throwaway kit)."""
    from tenantkit.admin import create_tenant, create_user
    from tenantkit.db.migrate import upgrade

    kit = _tenantkit_kit(data_dir)
    await upgrade(kit.database)
    await kit.startup()
    try:
        tenant = await create_tenant(kit, "Bench", "bench")
        user_id = await create_user(kit, "bench@example.com", "bench-password", tenant=tenant, role="ADMIN")
        token, _ = kit.tokens.issue(
            user_id=user_id, tenant_id=tenant.id, session_id=uuid.uuid4(), role="ADMIN"
        )
    finally:
        await kit.shutdown()
    return str(token)


def _tenantkit_app(data_dir: Path) -> Any:
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from tenantkit.rbac import requires_permissions

    @requires_permissions("reports.read")
    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"hello": "world"})

    return _tenantkit_kit(data_dir).build_app([Route("/hello", hello)])


def serve(kind: str, port: int, data_dir: Path) -> None:
    """Run one app under uvicorn; write the bearer token (if any) to ``data_dir/token``."""
    import logging

    import uvicorn

    if kind == "bare":
        app, token = _bare_app(), ""
    else:
        token = asyncio.run(_tenantkit_setup(data_dir))
        app = _tenantkit_app(data_dir)
    (data_dir / "token").write_text(token)
    logging.getLogger("tenantkit").setLevel("WARNING")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on")


# --------------------------------------------------------------------------- #
# Load side (runs in a subprocess)
# --------------------------------------------------------------------------- #


async def _drive(url: str, token: str, concurrency: int, duration: float) -> dict[str, Any]:
    """Keep-alive HTTP/1.1 GETs over raw asyncio streams (a Python client such as
    httpx would be slower than the server it measures)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    request = (f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}\r\n").encode()
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await reader.readexactly(length)
        return status

    async def worker(deadline: float, record: bool) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                begin = time.perf_counter()
                if begin >= deadline:
                    return
                status = await one(reader, writer)
                if record:
                    latencies.append(time.perf_counter() - begin)
                    statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(worker(time.perf_counter() + 0.5, False) for _ in range(concurrency)))
    started = time.perf_counter()
    await asyncio.gather(*(worker(started + duration, True) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0

    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 3),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(pct(0.50), 3),
        "p99_ms": round(pct(0.99), 3),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def load(url: str, token_file: Path, concurrency: int, duration: float, out: Path) -> None:
    result = asyncio.run(_drive(url, token_file.read_text(), concurrency, duration))
    out.write_text(json.dumps(result))


# --------------------------------------------------------------------------- #
# Orchestration
# --------------------------------------------------------------------------- #


def _wait_for(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("server did not start in time")


def measure(kind: str, concurrency: int, duration: float) -> dict[str, Any]:
    """Start ``kind``'s server, drive it from another process, stop it."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"tk-load-{kind}-"))
    port = free_port()
    env = {**os.environ, "TENANTKIT_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(ROOT)}
    here = [sys.executable, "-m", "bench.http_load"]
    server = subprocess.Popen([*here, "_serve", kind, str(port), str(data_dir)], cwd=ROOT, env=env)
    try:
        _wait_for(port, server)
        out = data_dir / "result.json"
        subprocess.run(
            [
                *here,
                "_load",
                f"http://127.0.0.1:{port}/hello",
                str(data_dir / "token"),
                str(concurrency),
                str(duration),
                str(out),
            ],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=duration + 60,
        )
        result: dict[str, Any] = json.loads(out.read_text())
        return result
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def run(concurrency: int = 16, duration: float = 5.0) -> dict[str, Any]:
    bare = measure("bare", concurrency, duration)
    full = measure("tenantkit", concurrency, duration)
    results: dict[str, Any] = {
        "concurrency": concurrency,
        "duration_s": duration,
        "bare": bare,
        "tenantkit": full,
        "rps_ratio": round(full["rps"] / bare["rps"], 3) if bare["rps"] else None,
        "p99_ratio": round(full["p99_ms"] / bare["p99_ms"], 3) if bare["p99_ms"] else None,
    }
    print(f"HTTP load over loopback: {concurrency} connections, {duration:g} s each (uvicorn, 1 worker)")
    for name, data in (("bare Starlette", bare), ("tenantkit full stack", full)):
        print(
            f"  {name:22s} {data['rps']:9.1f} req/s   p50 {data['p50_ms']:7.2f} ms   "
            f"p99 {data['p99_ms']:7.2f} ms   statuses {data['statuses']}"
        )
    print(f"  tenantkit / bare: {results['rps_ratio']}× req/s, {results['p99_ratio']}× p99")
    print(f"  -> {write_result('http_load', results)}")
    return results


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "_serve":
        serve(args[1], int(args[2]), Path(args[3]))
        return
    if args and args[0] == "_load":
        load(args[1], Path(args[2]), int(args[3]), float(args[4]), Path(args[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    options = parser.parse_args(args)
    run(options.concurrency, options.duration)


if __name__ == "__main__":
    main()
