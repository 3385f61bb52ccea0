"""The ``tenantkit`` command: database migrations, settings check, and admin tasks."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from tenantkit.errors import ConfigurationError, TenantKitError
from tenantkit.kit import TenantKit
from tenantkit.settings import Settings

__all__ = ["main"]


def _kit(extra_locations: Sequence[str] = ()) -> TenantKit:
    return TenantKit(Settings.load(), migration_locations=extra_locations)


async def _db_upgrade(kit: TenantKit) -> None:
    from tenantkit.db.migrate import current, upgrade

    kit.settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        await upgrade(kit.database, kit.migration_locations)
        print("database at", ", ".join(await current(kit.database)) or "base")
    finally:
        await kit.database.dispose()


async def _db_current(kit: TenantKit) -> None:
    from tenantkit.db.migrate import current

    try:
        print(", ".join(await current(kit.database)) or "base (no migration applied)")
    finally:
        await kit.database.dispose()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tenantkit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    db = commands.add_parser("db", help="database migrations")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    up = db_commands.add_parser("upgrade", help="apply pending migrations (tenantkit's and --location)")
    up.add_argument("--location", action="append", default=[], help="extra alembic version location")
    db_commands.add_parser("current", help="show the applied revisions")
    commands.add_parser("check", help="validate the settings and exit")
    tenant = commands.add_parser("create-tenant", help="create a tenant")
    tenant.add_argument("name")
    tenant.add_argument("--slug")
    tenant.add_argument("--open-signup", action="store_true")
    user = commands.add_parser("create-user", help="create a user, optionally a member of a tenant")
    user.add_argument("email")
    user.add_argument("--tenant", help="tenant id or slug")
    user.add_argument("--role", default="USER")
    superadmin = commands.add_parser("create-superadmin", help="create a platform operator (SUPER_ADMIN)")
    superadmin.add_argument("email")
    for sub in (user, superadmin):
        sub.add_argument(
            "--password-stdin", action="store_true", help="read the password from standard input"
        )
    return parser


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    import getpass

    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise SystemExit("passwords differ")
    return first


async def _admin(kit: TenantKit, args: argparse.Namespace) -> None:
    from tenantkit import admin

    try:
        await kit.startup()
        if args.command == "create-tenant":
            ref = await admin.create_tenant(kit, args.name, args.slug, open_signup=args.open_signup)
            print(f"tenant {ref.slug} ({ref.id})")
        elif args.command == "create-user":
            tenant = await kit.directory.find(args.tenant) if args.tenant else None
            if args.tenant and tenant is None:
                raise SystemExit(f"unknown tenant {args.tenant!r}")
            user_id = await admin.create_user(kit, args.email, _password(args), tenant=tenant, role=args.role)
            print(f"user {args.email} ({user_id})")
        else:
            user_id = await admin.create_superadmin(kit, args.email, _password(args))
            print(f"superadmin {args.email} ({user_id}) in tenant {admin.PLATFORM_SLUG!r}")
    finally:
        await kit.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tenantkit`` console script."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check":
            settings = Settings.load()
            print(
                f"settings OK (env={settings.env}, database={settings.resolved_database_url.split(':')[0]})"
            )
            return 0
        if args.command == "db":
            kit = _kit(args.location if args.db_command == "upgrade" else ())
            if args.db_command == "upgrade":
                asyncio.run(_db_upgrade(kit))
            else:
                asyncio.run(_db_current(kit))
            return 0
        if args.command in ("create-tenant", "create-user", "create-superadmin"):
            asyncio.run(_admin(_kit(), args))
            return 0
    except ConfigurationError as exc:
        print(exc, file=sys.stderr)
        return 2
    except TenantKitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
