"""tenantkit against peer auth stacks for one authenticated GET, in process, same run.

Every app answers ``GET /hello`` with the same small JSON body, driven by the
same raw ASGI loop as ``bench/overhead.py`` (no sockets, no client library):

- bare Starlette and bare FastAPI endpoints (no auth: the floors);
- fastapi-users with its JWT strategy and Bearer transport, ``current_user(active=True)``
  loading the user from a dict (framework cost only) and from SQLite through
  SQLAlchemy (one primary-key ``SELECT`` per request, as its SQLAlchemy adapter does);
- Litestar's ``JWTAuth`` middleware, user from a dict (if Litestar is installed);
- tenantkit's full stack with a warm token: request context, JWT check,
  revocation check, tenant resolution, live role and permission check
  (``requires_permissions``), on SQLite with its in-process caches.

Peers are installed only in the benchmark environment (``nox -s bench``);
a missing peer is reported and skipped.
"""

from __future__ import annotations

import asyncio
import importlib.util
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Boolean, String, Uuid, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench.common import UNLIMITED, figure, line, request_driver, side_by_side_us, write_result
from tenantkit import Settings, TenantKit
from tenantkit.admin import create_tenant, create_user
from tenantkit.db.migrate import upgrade
from tenantkit.rbac import requires_permissions

SECRET = "bench-secret-" + "x" * 40
Driver = Callable[[], Awaitable[int]]


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


@requires_permissions("reports.read")
async def guarded(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


def bearer(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {token}".encode())]


@dataclass
class PeerUser:
    """The fields fastapi-users' ``UserProtocol`` reads."""

    id: uuid.UUID
    email: str
    hashed_password: str = "x"
    is_active: bool = True
    is_superuser: bool = False
    is_verified: bool = True


class Base(DeclarativeBase):
    pass


class UserRow(Base):
    """fastapi-users' ``SQLAlchemyBaseUserTableUUID`` columns."""

    __tablename__ = "user"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True, index=True)
    hashed_password: Mapped[str] = mapped_column(String(1024))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_superuser: Mapped[bool] = mapped_column(Boolean, default=False)
    is_verified: Mapped[bool] = mapped_column(Boolean, default=True)


async def fastapi_apps(data_dir: Path) -> dict[str, Driver]:
    """Bare FastAPI and fastapi-users (dict and SQLite user lookups)."""
    from fastapi import Depends, FastAPI
    from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin
    from fastapi_users.authentication import AuthenticationBackend, BearerTransport, JWTStrategy
    from fastapi_users.db import BaseUserDatabase

    user = PeerUser(id=uuid.uuid4(), email="peer@example.com")
    engine = create_async_engine(f"sqlite+aiosqlite:///{data_dir / 'peers.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions.begin() as session:
        session.add(UserRow(id=user.id, email=user.email, hashed_password="x"))

    class DictUserDatabase(BaseUserDatabase[Any, uuid.UUID]):
        async def get(self, id: uuid.UUID) -> Any:
            return user if id == user.id else None

    class SQLUserDatabase(BaseUserDatabase[Any, uuid.UUID]):
        """What ``fastapi_users_db_sqlalchemy.SQLAlchemyUserDatabase.get`` does."""

        def __init__(self, session: Any) -> None:
            self.session = session

        async def get(self, id: uuid.UUID) -> Any:
            result = await self.session.execute(select(UserRow).where(UserRow.id == id))
            return result.unique().scalar_one_or_none()

    class UserManager(UUIDIDMixin, BaseUserManager[Any, uuid.UUID]):
        reset_password_token_secret = SECRET
        verification_token_secret = SECRET

    def strategy() -> JWTStrategy[Any, uuid.UUID]:
        return JWTStrategy(secret=SECRET, lifetime_seconds=3600)

    backend = AuthenticationBackend(
        name="jwt", transport=BearerTransport("auth/login"), get_strategy=strategy
    )

    async def dict_db() -> AsyncIterator[Any]:
        yield DictUserDatabase()

    async def sql_db() -> AsyncIterator[Any]:
        async with sessions() as session:
            yield SQLUserDatabase(session)

    def users_app(get_db: Any) -> FastAPI:
        async def manager(db: Any = Depends(get_db)) -> AsyncIterator[Any]:  # noqa: B008
            yield UserManager(db)

        current = FastAPIUsers[Any, uuid.UUID](manager, [backend]).current_user(active=True)
        app = FastAPI()

        @app.get("/hello")
        async def hello_user(_user: Any = Depends(current)) -> JSONResponse:  # noqa: B008
            return JSONResponse({"hello": "world"})

        return app

    bare = FastAPI()

    @bare.get("/hello")
    async def hello_bare() -> JSONResponse:
        return JSONResponse({"hello": "world"})

    token = await strategy().write_token(user)
    return {
        "bare FastAPI": request_driver(bare, "/hello"),
        "fastapi-users JWT, user from dict": request_driver(users_app(dict_db), "/hello", bearer(token)),
        "fastapi-users JWT, user from SQLite": request_driver(users_app(sql_db), "/hello", bearer(token)),
    }


def litestar_app() -> Driver:
    """Litestar with ``JWTAuth`` middleware, user from a dict."""
    from litestar import Litestar, get
    from litestar.connection import ASGIConnection
    from litestar.security.jwt import JWTAuth, Token

    user = PeerUser(id=uuid.uuid4(), email="peer@example.com")

    async def retrieve(token: Token, connection: ASGIConnection[Any, Any, Any, Any]) -> PeerUser | None:
        return user if token.sub == str(user.id) else None

    auth = JWTAuth[PeerUser](retrieve_user_handler=retrieve, token_secret=SECRET)

    @get("/hello")
    async def hello_litestar() -> dict[str, str]:
        return {"hello": "world"}

    app = Litestar(route_handlers=[hello_litestar], on_app_init=[auth.on_app_init], openapi_config=None)
    return request_driver(app, "/hello", bearer(auth.create_token(identifier=str(user.id))))


async def main() -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="tk-bench-peers-"))
    drivers: dict[str, Driver] = {
        "bare Starlette": request_driver(Starlette(routes=[Route("/hello", hello)]), "/hello")
    }
    skipped: list[str] = []
    if importlib.util.find_spec("fastapi_users") is not None:
        drivers.update(await fastapi_apps(data_dir))
    else:
        skipped.append("fastapi-users (pip install fastapi-users)")
    if importlib.util.find_spec("litestar") is not None:
        drivers["Litestar JWTAuth, user from dict"] = litestar_app()
    else:
        skipped.append("litestar (pip install litestar)")

    settings = Settings.load(
        env="test",
        jwt_secret=SECRET,
        data_dir=data_dir,
        bcrypt_rounds=4,
        log_level="WARNING",
        rate_limit_api=UNLIMITED,
        rate_limit_auth=UNLIMITED,
    )
    kit = TenantKit(settings, permissions=[("reports.read", "bench")], autoload_plugins=False)
    await upgrade(kit.database)
    app = kit.build_app([Route("/hello", guarded)])
    async with app.router.lifespan_context(app):
        tenant = await create_tenant(kit, "Bench", "bench")
        user_id = await create_user(kit, "bench@example.com", "bench-password", tenant=tenant, role="ADMIN")
        token, _ = kit.tokens.issue(
            user_id=user_id, tenant_id=tenant.id, session_id=uuid.uuid4(), role="ADMIN"
        )
        drivers["tenantkit full stack, warm token"] = request_driver(app, "/hello", bearer(token))
        timings = await side_by_side_us(drivers, n=3000)
    return {"timings_us": timings, "skipped": skipped}


def run() -> dict[str, Any]:
    results = asyncio.run(main())
    timings: dict[str, float] = results["timings_us"]
    bare = timings["bare Starlette"]
    print("one authenticated GET, in process, per request (median of rounds; ratio to bare Starlette)")
    for label, value in timings.items():
        line(label, value, "µs", ratio=value / bare)
    for missing in results["skipped"]:
        print(f"  skipped: {missing}")
    tenantkit = timings["tenantkit full stack, warm token"]
    peer_label = "fastapi-users JWT, user from SQLite"
    data: dict[str, Any] = {**results, "ratios_to_bare": {k: v / bare for k, v in timings.items()}}
    head = None
    if peer_label in timings:
        data["tenantkit_vs_fastapi_users"] = tenantkit / timings[peer_label]
        print(f"  tenantkit / fastapi-users (SQLite): {data['tenantkit_vs_fastapi_users']:.2f}×  (no target)")
        head = {
            "label": "tenantkit / fastapi-users (SQLite)",
            "ratio": data["tenantkit_vs_fastapi_users"],
            "unit": "×",
        }
    series = [figure(label, value, "µs") for label, value in timings.items()]
    print(f"  -> {write_result('peers', data, series=series, head=head)}")
    return results


if __name__ == "__main__":
    run()
