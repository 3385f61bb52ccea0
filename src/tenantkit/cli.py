"""The ``tenantkit`` command: database migrations, settings check, and admin tasks."""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import os
import sys
from collections.abc import Sequence

from starlette.routing import BaseRoute

from tenantkit.audit.cli import add_audit_commands, audit_command
from tenantkit.errors import ConfigurationError, TenantKitError
from tenantkit.kit import TenantKit
from tenantkit.settings import Settings

__all__ = ["main"]


def load_app(spec: str) -> tuple[TenantKit, Sequence[BaseRoute]]:
    """Import ``module:callable`` and return its kit and routes.

    The callable returns a ``TenantKit`` or an app built by ``TenantKit.build_app``
    (which carries its kit in ``app.state.tenantkit``).
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"--app must look like 'package.module:factory', not {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot load --app {spec!r}: {exc}") from None
    built = factory() if callable(factory) and not isinstance(factory, TenantKit) else factory
    if isinstance(built, TenantKit):
        return built, built.build_app().routes
    kit = getattr(getattr(built, "state", None), "tenantkit", None)
    if not isinstance(kit, TenantKit):
        raise ConfigurationError(f"--app {spec!r} gave neither a TenantKit nor an app built by one")
    return kit, list(getattr(built, "routes", ()))


def _kit(args: argparse.Namespace, extra_locations: Sequence[str] = ()) -> TenantKit:
    if args.app:
        kit = load_app(args.app)[0]
        kit.migration_locations.extend(extra_locations)
        return kit
    return TenantKit(Settings.load(), migration_locations=extra_locations)


def _routes(args: argparse.Namespace) -> None:
    """Print every route with its methods and the permissions or roles it requires."""
    from tenantkit.routing import plain_path, walk_routes

    if args.app:
        routes: Sequence[BaseRoute] = load_app(args.app)[1]
    else:
        routes = TenantKit(Settings.load()).build_app().routes

    rows: list[tuple[str, str, str]] = []
    for entry in walk_routes(routes):
        spec = entry.spec
        joiner = " | " if spec.any_of else ", "
        needs = joiner.join([*sorted(spec.permissions), *(f"role:{r}" for r in sorted(spec.roles))]) or (
            "authenticated" if spec.authenticated else "public"
        )
        rows.append((",".join(sorted(set(entry.methods) - {"HEAD"})), plain_path(entry.path), needs))
    rows = sorted(rows, key=lambda row: (row[1], row[0]))
    width = max((len(row[0]) for row in rows), default=6)
    path_width = max((len(row[1]) for row in rows), default=4)
    for methods, path, needs in rows:
        print(f"{methods:<{width}}  {path:<{path_width}}  {needs}")


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


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer of at least 1 (``--workers``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _worker_process(app: str | None) -> None:
    """One process of ``tenantkit worker --workers N``: build the app from the environment and run."""
    from tenantkit.jobs.cli import run_worker

    asyncio.run(run_worker(_kit(argparse.Namespace(app=app))))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tenantkit", description=__doc__)
    parser.add_argument(
        "--app",
        default=os.environ.get("TENANTKIT_APP"),
        help="your app as 'module:factory' returning a TenantKit or an app built by one "
        "(default: $TENANTKIT_APP); its migrations, routes and tasks are then included",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("routes", help="list the routes and the permissions each requires")
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
    worker = commands.add_parser("worker", help="run background jobs and webhook deliveries until stopped")
    worker.add_argument(
        "--workers", type=positive_int, default=1, help="worker processes to run (default 1: this one)"
    )
    jobs = commands.add_parser("jobs", help="background jobs")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True)
    dead = jobs_commands.add_parser("dead-letters", help="jobs that used up their attempts")
    dead_commands = dead.add_subparsers(dest="dead_command", required=True)
    dead_list = dead_commands.add_parser("list", help="list dead letters, newest first")
    dead_list.add_argument("--tenant", help="only this tenant's (id or slug)")
    dead_list.add_argument("--limit", type=int, default=50)
    requeue = dead_commands.add_parser("requeue", help="queue a dead letter's job again")
    requeue.add_argument("id")
    add_audit_commands(commands)
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
        if args.command == "routes":
            _routes(args)
            return 0
        if args.command == "db":
            kit = _kit(args, args.location if args.db_command == "upgrade" else ())
            if args.db_command == "upgrade":
                asyncio.run(_db_upgrade(kit))
            else:
                asyncio.run(_db_current(kit))
            return 0
        if args.command == "worker":
            from tenantkit.jobs.cli import run_worker, supervise

            kit = _kit(args)  # settings and --app checked here, before any child starts
            if args.workers == 1:
                asyncio.run(run_worker(kit))
                return 0
            return supervise(functools.partial(_worker_process, args.app), args.workers)
        if args.command == "jobs":
            from tenantkit.jobs.cli import dead_letters

            asyncio.run(dead_letters(_kit(args), args))
            return 0
        if args.command == "audit":
            return asyncio.run(audit_command(_kit(args).database, args))
        if args.command in ("create-tenant", "create-user", "create-superadmin"):
            asyncio.run(_admin(_kit(args), args))
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
