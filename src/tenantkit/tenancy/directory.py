"""Cached lookups of tenants and memberships, coherent across instances."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import select

from tenantkit.cache import SyncedCache
from tenantkit.context import TenantRef
from tenantkit.db.engine import Database
from tenantkit.db.models import Membership, Tenant
from tenantkit.normalize import normalize_slug
from tenantkit.stores.base import Store

__all__ = ["TenantDirectory", "tenant_ref"]

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


_MAX_KEYS = 10_000


def _cache_key(identifier: str) -> str:
    """``id:<canonical uuid>`` or ``slug:<normalized slug>``; ``""`` when it is neither."""
    if len(identifier) == 36 and _UUID.match(identifier):
        return "id:" + identifier.lower()
    try:
        return f"id:{uuid.UUID(identifier)}"
    except ValueError:
        pass
    try:
        return "slug:" + normalize_slug(identifier)
    except ValueError:
        return ""


def tenant_ref(tenant: Tenant) -> TenantRef:
    """The context value for a tenant row."""
    return TenantRef(
        id=tenant.id,
        slug=tenant.slug,
        name=tenant.name,
        status=tenant.status,
        require_mfa=bool(tenant.require_mfa),
    )


class TenantDirectory:
    """Find tenants by id or slug and the role a user holds in a tenant.

    Both lookups are served from memory on warm paths; changes made through
    :meth:`tenant_changed` and :meth:`membership_changed` reach every instance.
    """

    def __init__(self, database: Database, store: Store, *, ttl: float = 60.0) -> None:
        self._database = database
        self.tenants: SyncedCache[TenantRef | None] = SyncedCache(
            store, "tenants", self._load_tenant, ttl=ttl
        )
        self.roles: SyncedCache[str | None] = SyncedCache(store, "memberships", self._load_role, ttl=ttl)
        self._keys: dict[str, str] = {}  # identifier as sent -> cache key ("" when it names nothing)

    async def start(self) -> None:
        await self.tenants.start()
        await self.roles.start()

    async def stop(self) -> None:
        await self.tenants.stop()
        await self.roles.stop()

    async def _load_tenant(self, key: str) -> TenantRef | None:
        kind, _, value = key.partition(":")
        async with self._database.session() as session:
            column = Tenant.id if kind == "id" else Tenant.slug
            lookup: object = uuid.UUID(value) if kind == "id" else value
            tenant = (await session.execute(select(Tenant).where(column == lookup))).scalar_one_or_none()
        return tenant_ref(tenant) if tenant else None

    async def _load_role(self, key: str) -> str | None:
        tenant_id, _, user_id = key.partition(":")
        async with self._database.session() as session:
            role = await session.scalar(
                select(Membership.role).where(
                    Membership.tenant_id == uuid.UUID(tenant_id), Membership.user_id == uuid.UUID(user_id)
                )
            )
        return role

    async def find(self, identifier: str) -> TenantRef | None:
        """A tenant by id (UUID text) or slug (case-insensitive); ``None`` if unknown."""
        key = self._keys.get(identifier)
        if key is None:
            key = _cache_key(identifier)
            if len(identifier) <= 100:  # ids and slugs are short; the bound keeps memory small
                if len(self._keys) >= _MAX_KEYS:
                    self._keys.clear()
                self._keys[identifier] = key
        return await self.tenants.get(key) if key else None

    async def get(self, tenant_id: uuid.UUID) -> TenantRef | None:
        return await self.tenants.get(f"id:{tenant_id}")

    async def role_of(self, tenant_id: uuid.UUID | str, user_id: uuid.UUID | str) -> str | None:
        """The role ``user_id`` holds in ``tenant_id`` now, or ``None``.

        Canonical (lower-case, hyphenated) UUID strings avoid conversions on the hot path.
        """
        return await self.roles.get(f"{tenant_id}:{user_id}")

    async def tenant_changed(self, tenant_id: uuid.UUID, slug: str) -> None:
        """Announce a change to a tenant (status, name, slug) to every instance."""
        await self.tenants.invalidate(f"id:{tenant_id}", f"slug:{slug}")

    async def membership_changed(self, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Announce a role change or removal to every instance."""
        await self.roles.invalidate(f"{tenant_id}:{user_id}")
