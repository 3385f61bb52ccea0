"""The pytest plugin's options and fixtures (all opt-in: nothing runs unless a test asks).

Fixtures, each built on the one before:

``tenantkit_app_factory``
    The app factory named by ``--tenantkit-app`` / ini ``tenantkit_app``
    (``"package.module:create_app"``); override the fixture to build it yourself.
``tenantkit_database_url``
    ``--tenantkit-database-url`` / ini ``tenantkit_database_url``, else a fresh
    SQLite file in the test's ``tmp_path``.
``tenantkit_settings``
    ``TENANTKIT_*`` values set in the environment while the factory runs.
``tenantkit_app``
    The app the factory returns.
``tenantkit_client``
    An ``httpx.AsyncClient`` speaking to the app in process, after migrating the
    database and inside the app's lifespan.
``tenantkit_tenants``
    Tenants ``a`` and ``b``, each with an ADMIN registered over HTTP.
``tenantkit_isolation``
    :class:`IsolationKit`: ``await tenantkit_isolation.check()`` replays every
    route as ``a`` against ``b``'s resources.
"""

from __future__ import annotations

import importlib
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx
    from starlette.applications import Starlette

    from tenantkit.testing.isolation import IsolationReport, TenantUser

__all__ = [
    "IsolationKit",
    "TenantPair",
    "pytest_addoption",
    "tenantkit_app",
    "tenantkit_app_factory",
    "tenantkit_client",
    "tenantkit_database_url",
    "tenantkit_isolation",
    "tenantkit_settings",
    "tenantkit_tenants",
]

_NEEDS_ASYNCIO = "tenantkit's HTTP fixtures need pytest-asyncio (pip install pytest-asyncio)"


def _async_fixture(func: Callable[..., Any]) -> Any:
    """``pytest_asyncio.fixture`` when installed; otherwise a fixture that says what is missing."""
    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover - pytest-asyncio is in the test extra

        def missing() -> None:
            pytest.fail(_NEEDS_ASYNCIO)

        missing.__doc__ = func.__doc__
        return pytest.fixture(name=func.__name__)(missing)
    return pytest_asyncio.fixture(func)


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--tenantkit-app`` and ``--tenantkit-database-url``, and their ini twins."""
    group = parser.getgroup("tenantkit", "tenantkit isolation test kit")
    group.addoption(
        "--tenantkit-app",
        dest="tenantkit_app",
        default=None,
        metavar="MODULE:FACTORY",
        help="the app factory the tenantkit fixtures build (e.g. myapp.app:create_app)",
    )
    group.addoption(
        "--tenantkit-database-url",
        dest="tenantkit_database_url",
        default=None,
        metavar="URL",
        help="database for the tenantkit fixtures (default: a fresh SQLite file per test)",
    )
    parser.addini("tenantkit_app", "the app factory the tenantkit fixtures build (MODULE:FACTORY)")
    parser.addini("tenantkit_database_url", "database URL for the tenantkit fixtures")
    parser.addini(
        "tenantkit_migrate", "migrate the database before each test (default true)", type="bool", default=True
    )


def _option(config: pytest.Config, name: str) -> Any:
    value = config.getoption(name, default=None)
    if value:
        return value
    try:
        return config.getini(name) or None
    except ValueError:  # the fixtures were imported without loading the plugin
        return None


def load_factory(spec: str) -> Callable[[], Starlette]:
    """The callable ``"package.module:attribute"`` names."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise pytest.UsageError(f"--tenantkit-app must look like package.module:create_app, not {spec!r}")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise pytest.UsageError(f"--tenantkit-app {spec!r} is not callable")
    factory: Callable[[], Starlette] = target
    return factory


@pytest.fixture
def tenantkit_app_factory(request: pytest.FixtureRequest) -> Callable[[], Starlette]:
    """The app factory: ``--tenantkit-app`` / ini ``tenantkit_app``. Override to build it yourself.

    The factory is called with no arguments while ``tenantkit_settings`` are in the
    environment, so a factory reading ``Settings.load()`` picks them up.
    """
    spec = _option(request.config, "tenantkit_app")
    if not spec:
        pytest.fail(
            "tenantkit fixtures need an app: pass --tenantkit-app=package.module:create_app, "
            "set `tenantkit_app` in the pytest ini, or override the tenantkit_app_factory fixture"
        )
    return load_factory(str(spec))


@pytest.fixture
def tenantkit_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """``--tenantkit-database-url`` / ini ``tenantkit_database_url``, else a fresh SQLite file."""
    url = _option(request.config, "tenantkit_database_url")
    return str(url) if url else f"sqlite+aiosqlite:///{tmp_path / 'tenantkit.sqlite3'}"


@pytest.fixture
def tenantkit_settings(tenantkit_database_url: str, tmp_path: Path) -> dict[str, str]:
    """``TENANTKIT_*`` values (without the prefix) in the environment while the app is built.

    Override it to add your own (``redis_url``...), keeping rate limits high: the
    isolation check sends a few hundred requests from one address.
    """
    return {
        "env": "test",
        "database_url": tenantkit_database_url,
        "jwt_secret": secrets.token_urlsafe(48),
        "bcrypt_rounds": "4",
        "data_dir": str(tmp_path / "tenantkit-data"),
        "log_level": "WARNING",
        "rate_limit_auth": "100000/minute",
        "rate_limit_api": "100000/minute",
        "rate_limit_tenant": "100000/minute",
    }


@pytest.fixture
def tenantkit_app(
    tenantkit_app_factory: Callable[[], Starlette],
    tenantkit_settings: Mapping[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> Starlette:
    """The app, built by the factory with ``tenantkit_settings`` in the environment."""
    for key, value in tenantkit_settings.items():
        monkeypatch.setenv(f"TENANTKIT_{key.upper()}", str(value))
    return tenantkit_app_factory()


async def _migrate(app: Starlette) -> None:
    kit = getattr(app.state, "tenantkit", None)
    if kit is None:
        return
    from tenantkit.db.migrate import upgrade

    await upgrade(kit.database, list(getattr(kit, "migration_locations", ())))


@_async_fixture
async def tenantkit_client(
    request: pytest.FixtureRequest, tenantkit_app: Starlette
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the running app (database migrated unless ini ``tenantkit_migrate = false``)."""
    import httpx

    try:
        migrate = bool(request.config.getini("tenantkit_migrate"))
    except ValueError:  # the fixtures were imported without loading the plugin
        migrate = True
    if migrate:
        await _migrate(tenantkit_app)
    async with tenantkit_app.router.lifespan_context(tenantkit_app):
        transport = httpx.ASGITransport(app=tenantkit_app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
            yield client


@dataclass
class TenantPair:
    """Two tenants with their ADMINs: ``a`` must never see ``b``'s data."""

    a: TenantUser
    b: TenantUser


@_async_fixture
async def tenantkit_tenants(tenantkit_client: httpx.AsyncClient) -> TenantPair:
    """Tenants ``a`` and ``b``, each with an ADMIN registered through ``POST /auth/register``."""
    from tenantkit.testing.isolation import register_tenant

    return TenantPair(
        await register_tenant(tenantkit_client, "a"), await register_tenant(tenantkit_client, "b")
    )


@dataclass
class IsolationKit:
    """The app, its client and two tenants, ready for :meth:`check`."""

    app: Starlette
    client: httpx.AsyncClient
    tenants: TenantPair

    async def check(
        self,
        *,
        skip: Iterable[str] = (),
        bodies: Mapping[str, Any] | None = None,
        max_ids_per_param: int = 3,
    ) -> IsolationReport:
        """Replay every route as tenant A against tenant B's resources.

        See :func:`tenantkit.testing.isolation.check_isolation` for the arguments.
        """
        from tenantkit.testing.isolation import check_isolation

        return await check_isolation(
            self.client,
            self.app.routes,
            self.tenants.a,
            self.tenants.b,
            skip=skip,
            bodies=bodies,
            max_ids_per_param=max_ids_per_param,
        )


@pytest.fixture
def tenantkit_isolation(
    tenantkit_app: Starlette, tenantkit_client: httpx.AsyncClient, tenantkit_tenants: TenantPair
) -> IsolationKit:
    """The isolation check on the app: ``(await tenantkit_isolation.check()).assert_clean()``."""
    return IsolationKit(tenantkit_app, tenantkit_client, tenantkit_tenants)
