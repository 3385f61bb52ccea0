"""Shared fixtures: real PostgreSQL and Redis, one database per test from a migrated template."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TENANTKIT_DISABLE_PLUGIN_AUTOLOAD", "1")

from hypothesis import settings as hypothesis_settings  # noqa: E402

# CI replays the same examples every run (a red run must be reproducible);
# local runs keep exploring new ones.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("TENANTKIT_REQUIRE_SERVICES") == "1":
    hypothesis_settings.load_profile("ci")

from tenantkit import Settings, TenantKit  # noqa: E402
from tenantkit.context import TenantRef  # noqa: E402
from tenantkit.db.engine import Database  # noqa: E402
from tenantkit.db.migrate import upgrade  # noqa: E402
from tests.helpers import Api  # noqa: E402

PG_ADMIN_URL = os.environ.get("TENANTKIT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TENANTKIT_TEST_REDIS", "redis://127.0.0.1:6379/0")
REQUIRE = os.environ.get("TENANTKIT_REQUIRE_SERVICES") == "1"
APP_MIGRATIONS = ["inventory_app:migrations"]
SECRET = "test-secret-" + "x" * 40

PG_HINT = (
    "PostgreSQL is not reachable on 127.0.0.1:5432; start it with "
    "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
)
REDIS_HINT = (
    "Redis is not reachable on 127.0.0.1:6379; start it with "
    '`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no`'
)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _need(available: bool, hint: str) -> None:
    if available:
        return
    if REQUIRE:
        pytest.fail(hint + " (TENANTKIT_REQUIRE_SERVICES=1)")
    pytest.skip(hint)


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "gw0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_in_thread(app: Any, *, port: int | None = None, lifespan: str = "on") -> Iterator[str]:
    """Serve ``app`` with uvicorn on a loopback port in a thread; yields its base URL."""
    import threading
    import time

    import uvicorn

    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


async def _admin(sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _async_url(name: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database for this worker (created once, dropped at the end)."""
    _need(_port_open(5432), PG_HINT)
    name = f"tk_tpl_{worker_id()}_{os.getpid()}"

    async def create() -> None:
        await _admin(f'DROP DATABASE IF EXISTS "{name}"')
        await _admin(f'CREATE DATABASE "{name}"')
        database = Database(_async_url(name))
        try:
            await upgrade(database, APP_MIGRATIONS)
        finally:
            await database.dispose()

    asyncio.run(create())
    yield name
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.sqlite3"

    async def create() -> None:
        database = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await upgrade(database, APP_MIGRATIONS)
        finally:
            await database.dispose()

    asyncio.run(create())
    return path


@pytest.fixture
async def pg_url(pg_template: str) -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database for one test."""
    name = f"tk_{worker_id()}_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    try:
        yield _async_url(name)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh, migrated SQLite database for one test."""
    path = tmp_path / "db.sqlite3"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def redis_url() -> str:
    _need(_port_open(6379), REDIS_HINT)
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test; its keys are deleted afterwards."""
    prefix = f"tktest:{uuid.uuid4().hex[:12]}:"
    yield prefix

    async def cleanup() -> None:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(redis_url)
        try:
            keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()

    asyncio.run(cleanup())


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Any]:
    """A private three-master Redis Cluster for the whole session (never the shared Redis)."""
    from tests.services import private_redis_cluster

    with private_redis_cluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Run a test once on SQLite + memory store and once on PostgreSQL + Redis.

    ``@ON_CLUSTER`` adds a third run on PostgreSQL + the private Redis Cluster.
    """
    return str(request.param)


#: Run a ``backend`` test on SQLite, PostgreSQL + Redis, and PostgreSQL + a Redis Cluster.
ON_CLUSTER = pytest.mark.parametrize("backend", ["sqlite", "postgres", "cluster"], indirect=True)


@pytest.fixture
def settings_factory(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Callable[..., Settings]:
    """Build ``Settings`` for the current backend (``redis_prefix`` per test)."""
    values: dict[str, Any] = {
        "env": "test",
        "jwt_secret": SECRET,
        "bcrypt_rounds": 4,
        "data_dir": tmp_path / "data",
        "log_level": "WARNING",
        "rate_limit_auth": "10000/minute",
    }
    if backend == "postgres":
        values["database_url"] = request.getfixturevalue("pg_url")
        values["redis_url"] = request.getfixturevalue("redis_url")
        values["redis_key_prefix"] = request.getfixturevalue("redis_prefix")
    elif backend == "cluster":  # a private cluster for the session: a fresh prefix, no cleanup
        values["database_url"] = request.getfixturevalue("pg_url")
        values["redis_cluster_nodes"] = request.getfixturevalue("redis_cluster").nodes
        values["redis_key_prefix"] = f"tkc:{uuid.uuid4().hex[:12]}:"
    else:
        values["database_url"] = request.getfixturevalue("sqlite_url")

    def make(**overrides: Any) -> Settings:
        return Settings.load(**{**values, **overrides})

    return make


@pytest.fixture
async def kit_factory(settings_factory: Callable[..., Settings]) -> AsyncIterator[Callable[..., TenantKit]]:
    """Build started kits on the current backend; all are shut down after the test."""
    kits: list[TenantKit] = []

    def make(settings: Settings | None = None, **options: Any) -> TenantKit:
        kit = TenantKit(settings or settings_factory(), **options)
        kits.append(kit)
        return kit

    yield make
    for kit in kits:
        await kit.shutdown()


@pytest.fixture
async def two_instances(
    kit_factory: Callable[..., TenantKit], settings_factory: Callable[..., Settings], backend: str
) -> AsyncIterator[tuple[Api, Any]]:
    """Two served kits behaving as one deployment: the ``Api`` of A and a client of B.

    On postgres (cluster) they share PostgreSQL and Redis (the Redis Cluster); on
    sqlite the database file and one ``MemoryStore`` (standing in for Redis).
    """
    from tenantkit import MemoryStore
    from tenantkit.mail import MemoryMailer
    from tests.helpers import serve

    shared: dict[str, Any] = {} if backend != "sqlite" else {"store": MemoryStore()}
    kit_a = kit_factory(settings_factory(), mailer=MemoryMailer(), **shared)
    kit_b = kit_factory(settings_factory(), mailer=MemoryMailer(), **shared)
    async with (
        serve(kit_a.build_app(), base_url="https://testserver") as a,
        serve(kit_b.build_app(), base_url="https://testserver") as b,
    ):
        yield Api(a, kit_a, MemoryMailer()), b


@pytest.fixture
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh migrated database: SQLite unless parametrized ``indirect`` with ``"postgres"``."""
    kind = getattr(request, "param", "sqlite")
    return str(request.getfixturevalue("pg_url" if kind == "postgres" else "sqlite_url"))


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    """A ``Database`` on ``db_url``, disposed after the test."""
    database = Database(db_url)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def tenants(database: Database) -> tuple[TenantRef, TenantRef]:
    """Two tenants, ``a`` and ``b``."""
    from tenantkit.db.models import Tenant

    refs = (
        TenantRef(uuid.uuid4(), f"brand-a-{uuid.uuid4().hex[:6]}"),
        TenantRef(uuid.uuid4(), f"brand-b-{uuid.uuid4().hex[:6]}"),
    )
    async with database.session() as session, session.begin():
        for ref in refs:
            session.add(Tenant(id=ref.id, slug=ref.slug, name=ref.slug))
    return refs


@pytest.fixture
async def api(kit_factory: Callable[..., TenantKit]) -> AsyncIterator[Api]:
    """A served kit (over https, so Secure cookies flow) with an outbox mailer."""
    from tenantkit.mail import MemoryMailer
    from tests.helpers import serve

    mailer = MemoryMailer()
    kit = kit_factory(mailer=mailer)
    async with serve(kit.build_app(), base_url="https://testserver") as client:
        yield Api(client, kit, mailer)
