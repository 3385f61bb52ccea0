"""The inventory API: a Starlette app composed from tenantkit's public API.

A brand is a tenant. ``create_kit`` registers the app's permissions (ADMIN
holds all of them; USER reads the catalogue and stock, and places and reads
orders) and its migrations; ``create_app`` mounts the routes.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from inventory_app.routes import routes
from tenantkit import Settings, TenantKit

__all__ = ["MIGRATIONS", "PERMISSIONS", "USER_PERMISSIONS", "create_app", "create_kit"]

MIGRATIONS = "inventory_app:migrations"

PERMISSIONS: list[tuple[str, str]] = [
    ("products.read", "List and read products"),
    ("products.create", "Create products"),
    ("products.update", "Change products"),
    ("products.delete", "Delete products"),
    ("inventory.read", "Read stock levels"),
    ("inventory.adjust", "Adjust stock (writes the ledger)"),
    ("orders.read", "List and read orders"),
    ("orders.create", "Place orders"),
    ("files.read", "Read files and their download URLs"),
    ("files.create", "Upload files"),
    ("webhooks.manage", "Register and delete webhook endpoints"),
]

#: What the built-in USER role holds; ADMIN holds every permission.
USER_PERMISSIONS: list[str] = [
    "products.read",
    "inventory.read",
    "orders.read",
    "orders.create",
    "files.read",
]


def create_kit(settings: Settings | None = None, **options: Any) -> TenantKit:
    """The kit the app runs on (``options`` go to ``TenantKit``)."""
    options.setdefault("migration_locations", [MIGRATIONS])
    options.setdefault("permissions", PERMISSIONS)
    options.setdefault("user_permissions", USER_PERMISSIONS)
    return TenantKit(settings or Settings.load(), **options)


def create_app(kit: TenantKit | None = None) -> Starlette:
    """Build the ASGI app on ``kit`` (a kit from the environment when omitted)."""
    kit = kit or create_kit()
    return kit.build_app(routes=routes(kit), openapi={"title": "Inventory API", "version": "1.0"})
