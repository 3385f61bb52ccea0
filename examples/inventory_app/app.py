"""The inventory API: a Starlette app composed from tenantkit's public API."""

from __future__ import annotations

from starlette.applications import Starlette

from tenantkit import Settings, TenantKit

__all__ = ["MIGRATIONS", "create_app", "create_kit"]

MIGRATIONS = "inventory_app:migrations"


def create_kit(settings: Settings | None = None, **options: object) -> TenantKit:
    """The kit the app runs on (``options`` go to ``TenantKit``)."""
    return TenantKit(settings or Settings.load(), migration_locations=[MIGRATIONS], **options)  # type: ignore[arg-type]


def create_app(kit: TenantKit | None = None) -> Starlette:
    """Build the ASGI app."""
    kit = kit or create_kit()
    return kit.build_app(routes=[])
