"""``inventory-app serve|seed``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from inventory_app.app import create_kit
from inventory_app.seed import DEMO_BRANDS, DemoLogin, demo_logins, has_tenants, seed
from tenantkit import ConfigurationError, Settings, TenantKit
from tenantkit.cli import positive_int

__all__ = ["APP_FACTORY", "main", "server_options"]


async def migrate(kit: TenantKit) -> None:
    """Apply tenantkit's and the app's pending migrations."""
    from tenantkit.db.migrate import upgrade

    kit.settings.data_dir.mkdir(parents=True, exist_ok=True)
    await upgrade(kit.database, kit.migration_locations)
    await kit.database.dispose()


async def run_seed(settings: Settings, *, only_if_empty: bool = False) -> list[DemoLogin] | None:
    """Seed the demo data (``only_if_empty``: only into a database without tenants)."""
    kit = create_kit(settings)
    await kit.startup()
    try:
        if only_if_empty and await has_tenants(kit):
            demo = next(iter(DEMO_BRANDS))
            return demo_logins() if await kit.directory.find(demo) is not None else None
        return await seed(kit)
    finally:
        await kit.shutdown()


def print_logins(logins: Sequence[DemoLogin]) -> None:
    """Print the demo accounts, one per line."""
    print("demo logins (brand = tenant; send X-Tenant-ID: <brand> to choose):", flush=True)
    for login in logins:
        print(f"  {login.brand:<8} {login.role:<6} {login.email}  password: {login.password}", flush=True)


def seeds_demo(settings: Settings) -> bool:
    """Whether ``serve`` adds the demo accounts by itself.

    Only in development (``TENANTKIT_ENV=development``) on the embedded
    default database: demo logins with a published password never appear in
    production, whatever database it uses. ``inventory-app seed`` adds them
    anywhere, on purpose.
    """
    return settings.is_development and settings.database_url is None


#: What every server process imports and calls (``uvicorn --factory``).
APP_FACTORY = "inventory_app.app:create_app"


def server_options() -> dict[str, str]:
    """uvloop and httptools when installed (``tenantkit[speed]``), asyncio and h11 otherwise."""
    options = {"loop": "asyncio", "http": "h11"}
    try:
        import uvloop  # noqa: F401

        options["loop"] = "uvloop"
    except ImportError:
        pass
    try:
        import httptools  # noqa: F401

        options["http"] = "httptools"
    except ImportError:
        pass
    return options


def serve(host: str, port: int, *, run_migrations: bool, workers: int = 1) -> None:
    """Migrate, seed the embedded default's empty database in development, and serve.

    With ``workers`` above 1, this process applies the migrations once, then
    uvicorn's supervisor runs that many server processes on one port, each
    building the app from the environment (:data:`APP_FACTORY`). They behave
    as one only through a shared store, so more than one needs Redis.
    """
    import uvicorn

    settings = Settings.load()
    if workers > 1 and settings.redis_url is None and not settings.redis_cluster_nodes:
        raise ConfigurationError(
            "--workers above 1 needs TENANTKIT_REDIS_URL (or TENANTKIT_REDIS_CLUSTER_NODES): without it "
            "every process keeps its own "
            "revocations, rate limits and lockouts, and a logout on one would not reach the others"
        )
    if run_migrations:
        asyncio.run(migrate(create_kit(settings)))
    if seeds_demo(settings):  # a ready-to-try demo
        logins = asyncio.run(run_seed(settings, only_if_empty=True))
        if logins:
            print_logins(logins)
    options = server_options()
    processes = f"{workers} processes" if workers > 1 else "1 process"
    print(
        f"inventory-app on http://{host}:{port}  ({processes}, {options['loop']}, {options['http']}; "
        "health: /health, docs: /api-docs)",
        flush=True,
    )
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        proxy_headers=False,
        **options,  # type: ignore[arg-type]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``inventory-app`` console script."""
    parser = argparse.ArgumentParser(prog="inventory-app", description="EcomPointer-style inventory API")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="apply migrations and serve the API")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--no-migrate", action="store_true", help="do not apply pending migrations")
    run.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="server processes sharing the port (more than 1 needs Redis or a Redis Cluster)",
    )
    seeding = commands.add_parser("seed", help="apply migrations and add demo brands, users and products")
    seeding.add_argument("--no-migrate", action="store_true", help="do not apply pending migrations")
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            serve(args.host, args.port, run_migrations=not args.no_migrate, workers=args.workers)
        elif args.command == "seed":
            settings = Settings.load()
            if not args.no_migrate:
                asyncio.run(migrate(create_kit(settings)))
            logins = asyncio.run(run_seed(settings))
            print_logins(logins or [])
    except ConfigurationError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
