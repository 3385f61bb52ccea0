"""``inventory-app serve|seed``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from inventory_app.app import create_app, create_kit
from tenantkit import ConfigurationError, Settings, TenantKit

__all__ = ["main"]


async def migrate(kit: TenantKit) -> None:
    """Apply tenantkit's and the app's pending migrations."""
    from tenantkit.db.migrate import upgrade

    kit.settings.data_dir.mkdir(parents=True, exist_ok=True)
    await upgrade(kit.database, kit.migration_locations)
    await kit.database.dispose()


def serve(host: str, port: int, *, run_migrations: bool) -> None:
    import uvicorn

    kit = create_kit(Settings.load())
    if run_migrations:
        asyncio.run(migrate(kit))
    print(f"inventory-app on http://{host}:{port}  (health: /health, docs: /api-docs)", flush=True)
    uvicorn.run(create_app(kit), host=host, port=port, log_level="warning", proxy_headers=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``inventory-app`` console script."""
    parser = argparse.ArgumentParser(prog="inventory-app", description="EcomPointer-style inventory API")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="apply migrations and serve the API")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--no-migrate", action="store_true", help="do not apply pending migrations")
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            serve(args.host, args.port, run_migrations=not args.no_migrate)
    except ConfigurationError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
