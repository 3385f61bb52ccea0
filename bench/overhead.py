"""Per-request cost of tenantkit's full stack against a bare Starlette endpoint, in process.

Measured side by side in one run: the bare endpoint; a straightforward PyJWT
authentication middleware (decode on every request: what most hand-written
integrations do); tenantkit's full stack with a warm token (request context,
JWT verification from the verified-token cache, revocation check, tenant
resolution, live role and permission check). Target: full stack ≤ 1.5× bare.

It also prices the permission check on its own: the same stack on a route
guarded by ``requires_auth()`` (authenticated, no role lookup) against one
guarded by ``requires_permissions`` (live role and permission set, cached).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from pathlib import Path

import jwt
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bench.common import (
    UNLIMITED,
    figure,
    headline,
    line,
    per_request_us,
    request_driver,
    side_by_side_us,
    target_text,
    write_result,
)
from tenantkit import Settings, TenantKit
from tenantkit.admin import create_tenant, create_user
from tenantkit.db.migrate import upgrade
from tenantkit.rbac import requires_permissions
from tenantkit.rbac.decorators import requires_auth

SECRET = "bench-secret-" + "x" * 40


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


@requires_permissions("reports.read")
async def guarded(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


@requires_auth()
async def authenticated(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


class NaiveJWTMiddleware:
    """The hand-written baseline: decode and verify on every request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        token = headers.get(b"authorization", b"")[7:].decode()
        scope.setdefault("state", {})["claims"] = jwt.decode(
            token, SECRET, algorithms=["HS256"], audience="tenantkit", issuer="tenantkit"
        )
        await self.app(scope, receive, send)


async def main() -> dict[str, float]:
    bare = Starlette(routes=[Route("/hello", hello)])
    naive = Starlette(routes=[Route("/hello", hello)], middleware=[Middleware(NaiveJWTMiddleware)])

    data_dir = Path(tempfile.mkdtemp(prefix="tk-bench-"))
    settings = Settings.load(
        env="test",
        jwt_secret=SECRET,
        data_dir=data_dir,
        bcrypt_rounds=4,
        log_level="WARNING",
        rate_limit_api=UNLIMITED,
        rate_limit_auth=UNLIMITED,
        rate_limit_tenant=UNLIMITED,
    )
    kit = TenantKit(settings, permissions=[("reports.read", "bench")], autoload_plugins=False)
    await upgrade(kit.database)
    app = kit.build_app([Route("/hello", guarded), Route("/auth-only", authenticated)])
    async with app.router.lifespan_context(app):
        tenant = await create_tenant(kit, "Bench", "bench")
        user_id = await create_user(kit, "bench@example.com", "bench-password", tenant=tenant, role="ADMIN")
        del user_id  # a real session: revocation checks it against the database on first sight
        pair = await kit.sessions.login(
            email="bench@example.com", password="bench-password", tenant=tenant, ip=None, user_agent="bench"
        )
        token = pair.access_token
        auth = [(b"authorization", f"Bearer {token}".encode())]
        principal = kit.tokens.verify(token)
        _, api_key = await kit.api_keys.create(
            tenant,
            creator_id=principal.user_id,
            creator_permissions=frozenset({"reports.read"}),
            name="bench",
            scopes=["reports.read"],
            expires_in_days=None,
        )
        key_auth = [(b"x-api-key", api_key.encode())]
        naive_token = jwt.encode(
            {"sub": "u", "iss": "tenantkit", "aud": "tenantkit", "exp": int(time.time()) + 3600},
            SECRET,
            algorithm="HS256",
        )
        naive_auth = [(b"authorization", f"Bearer {naive_token}".encode())]
        logging.getLogger("tenantkit").setLevel("WARNING")
        results = await side_by_side_us(
            {
                "bare_us": request_driver(bare, "/hello"),
                "naive_pyjwt_us": request_driver(naive, "/hello", naive_auth),
                "tenantkit_full_stack_us": request_driver(app, "/hello", auth),
                "tenantkit_api_key_us": request_driver(app, "/hello", key_auth),
                "tenantkit_requires_auth_us": request_driver(app, "/auth-only", auth),
                "tenantkit_auth_me_us": request_driver(app, "/auth/me", auth),
            }
        )
        kit.tokens.cache_size = 0
        kit.tokens.clear_cache()
        results["tenantkit_cold_token_us"] = await per_request_us(request_driver(app, "/hello", auth), n=2000)
    with contextlib.suppress(Exception):
        for path in data_dir.iterdir():
            path.unlink()
    results["full_stack_ratio"] = results["tenantkit_full_stack_us"] / results["bare_us"]
    results["naive_pyjwt_ratio"] = results["naive_pyjwt_us"] / results["bare_us"]
    results["permission_check_us"] = (
        results["tenantkit_full_stack_us"] - results["tenantkit_requires_auth_us"]
    )
    return results


def run() -> dict[str, float]:
    results = asyncio.run(main())
    bare = results["bare_us"]
    print("per-request cost, in process, one authenticated GET (median of rounds)")
    line("bare Starlette endpoint", bare, "µs", ratio=1.0)
    line("naive PyJWT middleware", results["naive_pyjwt_us"], "µs", ratio=results["naive_pyjwt_ratio"])
    line(
        "tenantkit full stack, warm token",
        results["tenantkit_full_stack_us"],
        "µs",
        ratio=results["full_stack_ratio"],
        note=target_text("<=", 1.5),
    )
    line(
        "tenantkit full stack, warm API key",
        results["tenantkit_api_key_us"],
        "µs",
        ratio=results["tenantkit_api_key_us"] / bare,
    )
    line("tenantkit, requires_auth only", results["tenantkit_requires_auth_us"], "µs")
    line(
        "tenantkit, GET /auth/me",
        results["tenantkit_auth_me_us"],
        "µs",
        ratio=results["tenantkit_auth_me_us"] / bare,
    )
    line("  -> permission check (difference)", results["permission_check_us"], "µs")
    line(
        "tenantkit, token cache off",
        results["tenantkit_cold_token_us"],
        "µs",
        ratio=results["tenantkit_cold_token_us"] / bare,
    )
    series = [
        figure("bare Starlette", bare, "µs"),
        figure("naive PyJWT middleware", results["naive_pyjwt_us"], "µs"),
        figure("tenantkit, requires_auth", results["tenantkit_requires_auth_us"], "µs"),
        figure("tenantkit full stack", results["tenantkit_full_stack_us"], "µs"),
        figure("tenantkit, token cache off", results["tenantkit_cold_token_us"], "µs"),
    ]
    head = headline("full stack / bare Starlette", results["full_stack_ratio"], "<=", 1.5)
    print(f"  -> {write_result('overhead', results, series=series, head=head)}")
    return results


if __name__ == "__main__":
    run()
