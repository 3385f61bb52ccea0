"""Roles: built-in USER < ADMIN < SUPER_ADMIN plus per-tenant custom roles."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select

from tenantkit.cache import SyncedCache
from tenantkit.db.engine import Database
from tenantkit.db.models import Role
from tenantkit.db.scoping import tenant_scope
from tenantkit.rbac.registry import PermissionRegistry
from tenantkit.stores.base import Store

__all__ = ["ADMIN", "BUILTIN_ROLES", "SUPER_ADMIN", "USER", "RoleBook"]

USER = "USER"
ADMIN = "ADMIN"
SUPER_ADMIN = "SUPER_ADMIN"
BUILTIN_ROLES = (USER, ADMIN, SUPER_ADMIN)
_RANK = {USER: 1, ADMIN: 2, SUPER_ADMIN: 3}


class RoleBook:
    """Maps a tenant's role names to the permission codes they grant.

    ``USER`` holds the patterns the app configures (``user_permissions``);
    ``ADMIN`` holds every tenant permission; ``SUPER_ADMIN`` every permission,
    platform ones included. Custom roles live in the ``roles`` table, cached
    and invalidated across instances.
    """

    def __init__(
        self,
        registry: PermissionRegistry,
        database: Database,
        store: Store,
        *,
        user_permissions: Iterable[str] = (),
        ttl: float = 300.0,
    ) -> None:
        self.registry = registry
        self.user_patterns = tuple(user_permissions)
        self._database = database
        self._builtin: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        self.custom: SyncedCache[frozenset[str] | None] = SyncedCache(store, "roles", self._load, ttl=ttl)

    async def start(self) -> None:
        await self.custom.start()

    async def stop(self) -> None:
        await self.custom.stop()

    async def _load(self, key: str) -> frozenset[str] | None:
        raw_tenant, _, name = key.partition(":")
        tenant_id = uuid.UUID(raw_tenant)
        with tenant_scope(tenant_id):  # roles are tenant-owned (ORM scoping and RLS)
            async with self._database.session() as session:
                patterns = await session.scalar(
                    select(Role.permissions).where(Role.tenant_id == tenant_id, Role.name == name)
                )
        if patterns is None:
            return None
        return self.registry.expand(patterns)

    def builtin(self, role: str) -> frozenset[str] | None:
        """Permissions of a built-in role, or ``None`` for a custom name."""
        codes = self.registry.codes
        cached = self._builtin.get(role)
        if cached is not None and cached[0] is codes:
            return cached[1]
        result = self._compute_builtin(role)
        if result is not None:
            self._builtin[role] = (codes, result)
        return result

    def _compute_builtin(self, role: str) -> frozenset[str] | None:
        if role == USER:
            return self.registry.expand(self.user_patterns)
        if role == ADMIN:
            return self.registry.tenant_codes
        if role == SUPER_ADMIN:
            return self.registry.codes
        return None

    async def permissions(self, tenant_id: uuid.UUID, role: str) -> frozenset[str]:
        """What ``role`` grants in ``tenant_id`` (empty for an unknown role)."""
        builtin = self.builtin(role)
        if builtin is not None:
            return builtin
        return await self.custom.get(f"{tenant_id}:{role}") or frozenset()

    async def role_changed(self, tenant_id: uuid.UUID, name: str) -> None:
        await self.custom.invalidate(f"{tenant_id}:{name}")

    @staticmethod
    def rank(role: str) -> int:
        """1 USER, 2 ADMIN, 3 SUPER_ADMIN; custom roles rank 0 (compared by permissions)."""
        return _RANK.get(role, 0)
