"""The two servers of ``bench.real``, each run as ``python -m bench.real_servers KIND PORT CONFIG``.

- ``app``: the example app (``inventory_app``) exactly as deployed: production
  settings, PostgreSQL as the ``tenantkit_app`` role (row-level security
  binding), Redis for the stores, bcrypt at its default cost.
- ``bare``: a bare Starlette app with the floors tenantkit is compared with:

  * ``GET /me``: the JSON ``GET /auth/me`` answered, as a constant (no auth,
    no I/O): the cost of the framework and the server alone;
  * ``GET /products?limit=20``: the same query as the example app's list
    (``WHERE tenant_id = $1 ORDER BY created_at, id LIMIT n+1``) through an
    asyncpg pool (prepared statements cached), the same JSON shape and cursor;
  * ``POST /rotate``: refresh rotation as one statement in one round trip: a
    CTE that spends the presented token only while everything it stands on is
    valid (the checks of ``tenantkit.auth.rotation``: unspent, unexpired, not
    idle; session, user, tenant and membership alive) and inserts the successor.

Both run under uvicorn with the same settings: one worker, loopback, no access
log, ``loop="auto"`` and ``http="auto"`` (uvloop and httptools when installed).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import sys
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def uvicorn_options(port: int) -> dict[str, Any]:
    """The server settings both apps run with."""
    return {
        "host": "127.0.0.1",
        "port": port,
        "workers": 1,
        "loop": "auto",
        "http": "auto",
        "log_level": "warning",
        "access_log": False,
        "lifespan": "on",
    }


def app_settings(config: dict[str, Any]) -> Any:
    """The example app's settings: production, the RLS-bound role, Redis, default bcrypt cost."""
    from bench.common import UNLIMITED
    from tenantkit import Settings

    return Settings.load(
        env="production",
        jwt_secret=config["secret"],
        database_url=config["app_url"],
        redis_url=config["redis_url"],
        redis_key_prefix=config["redis_prefix"],
        data_dir=Path(config["data_dir"]),
        log_level="WARNING",
        bcrypt_rounds=config.get("bcrypt_rounds", 12),
        # The limiter stays in the path (its cost counts) without refusing the load.
        rate_limit_auth=UNLIMITED,
        rate_limit_api=UNLIMITED,
        rate_limit_tenant=UNLIMITED,
        lockout_threshold=1_000_000,
    )


def example_app(config: dict[str, Any]) -> Any:
    from inventory_app.app import create_app, create_kit

    return create_app(create_kit(app_settings(config)))


# --------------------------------------------------------------------------- #
# The bare floors
# --------------------------------------------------------------------------- #

PRODUCTS = (
    "SELECT id, sku, name, description, price, stock, low_stock_threshold, created_at, updated_at "
    "FROM products WHERE tenant_id = $1 ORDER BY created_at, id LIMIT $2"
)

#: Spend and mint in one round trip, with tenantkit's validity checks.
ROTATE = """
WITH spent AS (
    UPDATE refresh_tokens AS t SET spent_at = $2, successor_id = $3
    FROM auth_sessions AS s, users AS u, tenants AS tn, memberships AS m
    WHERE t.digest = $1 AND t.spent_at IS NULL AND t.expires_at > $2 AND t.created_at > $4
      AND s.id = t.session_id AND s.revoked_at IS NULL AND s.expires_at > $2
      AND u.id = s.user_id AND u.is_active
      AND tn.id = s.tenant_id AND tn.status = 'active'
      AND m.tenant_id = s.tenant_id AND m.user_id = s.user_id
    RETURNING t.session_id, s.user_id, s.tenant_id, s.expires_at, m.role
), minted AS (
    INSERT INTO refresh_tokens (id, session_id, digest, created_at, expires_at)
    SELECT $3, session_id, $5, $2, $6 FROM spent
    RETURNING session_id
)
SELECT spent.user_id, spent.tenant_id, spent.role FROM spent JOIN minted USING (session_id)
"""


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([_iso(created_at), str(row_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def bare_app(config: dict[str, Any]) -> Any:
    import asyncpg
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    me = config["me"]
    tenant_id = uuid.UUID(config["tenant_id"])
    pools: dict[str, Any] = {}
    refresh_ttl = timedelta(seconds=604800)
    idle = timedelta(seconds=1209600)

    async def me_endpoint(request: Request) -> JSONResponse:
        return JSONResponse(me)

    async def products(request: Request) -> JSONResponse:
        limit = int(request.query_params.get("limit", "20"))
        async with pools["db"].acquire() as connection:
            rows = await connection.fetch(PRODUCTS, tenant_id, limit + 1)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = _cursor(rows[-1]["created_at"], rows[-1]["id"])
        items = [
            {
                "id": str(row["id"]),
                "sku": row["sku"],
                "name": row["name"],
                "description": row["description"],
                "price": f"{row['price']:.2f}",
                "stock": row["stock"],
                "low_stock_threshold": row["low_stock_threshold"],
                "created_at": _iso(row["created_at"]),
                "updated_at": _iso(row["updated_at"]),
            }
            for row in rows
        ]
        return JSONResponse({"items": items, "next_cursor": next_cursor})

    async def rotate(request: Request) -> JSONResponse:
        presented = (await request.json())["refresh_token"]
        successor = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        async with pools["db"].acquire() as connection:
            row = await connection.fetchrow(
                ROTATE,
                hashlib.sha256(presented.encode()).digest(),
                now,
                uuid.uuid4(),
                now - idle,
                hashlib.sha256(successor.encode()).digest(),
                now + refresh_ttl,
            )
        if row is None:
            return JSONResponse({"title": "Unauthorized"}, 401)
        return JSONResponse({"refresh_token": successor, "token_type": "bearer"})

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        pools["db"] = await asyncpg.create_pool(config["bare_dsn"], min_size=2, max_size=10)
        try:
            yield
        finally:
            await pools["db"].close()

    return Starlette(
        routes=[
            Route("/me", me_endpoint),
            Route("/products", products),
            Route("/rotate", rotate, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def main(argv: list[str]) -> None:
    import uvicorn

    kind, port, config_file = argv[0], int(argv[1]), Path(argv[2])
    config = json.loads(config_file.read_text())
    app = example_app(config) if kind == "app" else bare_app(config)
    logging.getLogger("tenantkit").setLevel("WARNING")
    uvicorn.run(app, **uvicorn_options(port))


if __name__ == "__main__":
    main(sys.argv[1:])
