"""Operator tasks behind the ``tenantkit`` command: tenants, users, platform operators.

Tenants and memberships go through :class:`tenantkit.tenancy.service.TenancyService`
(hooks and audit rows included), like every other path that changes them.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from sqlalchemy import select

from tenantkit.auth.passwords import PasswordHasher
from tenantkit.context import TenantRef
from tenantkit.db.engine import Database
from tenantkit.db.models import User
from tenantkit.events import Events
from tenantkit.normalize import normalize_email
from tenantkit.rbac.roles import SUPER_ADMIN
from tenantkit.tenancy.directory import TenantDirectory
from tenantkit.tenancy.service import PLATFORM_SLUG, TenancyService

__all__ = ["PLATFORM_SLUG", "Platform", "create_superadmin", "create_tenant", "create_user"]


class Platform(Protocol):
    """What operator tasks use (a ``TenantKit`` provides it)."""

    @property
    def database(self) -> Database: ...
    @property
    def passwords(self) -> PasswordHasher: ...
    @property
    def events(self) -> Events: ...
    @property
    def directory(self) -> TenantDirectory: ...
    @property
    def tenancy(self) -> TenancyService: ...


async def create_tenant(
    kit: Platform, name: str, slug: str | None = None, *, open_signup: bool = False
) -> TenantRef:
    """Create a tenant (409 semantics: raises ``ConflictError`` when the slug is taken)."""
    return await kit.tenancy.create_tenant(name, slug, open_signup=open_signup, via="cli")


async def create_user(
    kit: Platform, email: str, password: str, *, tenant: TenantRef | None = None, role: str = "USER"
) -> uuid.UUID:
    """Create a user (or reuse one with that email) and optionally give them ``role`` in ``tenant``."""
    address = normalize_email(email)
    password_hash = await kit.passwords.hash(password)
    async with kit.database.session() as session, session.begin():
        user = await session.scalar(select(User).where(User.email == address))
        created = user is None
        if user is None:
            user = User(email=address, password_hash=password_hash)
            session.add(user)
            await session.flush()
        user_id = user.id
    if created:
        kit.events.audit("user.created", tenant_id=tenant.id if tenant else None, target=str(user_id))
    if tenant is not None:
        await kit.tenancy.add_member(tenant, user_id, role, via="cli")
    return user_id


async def create_superadmin(kit: Platform, email: str, password: str) -> uuid.UUID:
    """A platform operator: flagged user with the SUPER_ADMIN role in the ``platform`` tenant."""
    platform = await kit.directory.find(PLATFORM_SLUG)
    if platform is None:
        platform = await create_tenant(kit, "Platform", PLATFORM_SLUG)
    user_id = await create_user(kit, email, password, tenant=platform, role=SUPER_ADMIN)
    async with kit.database.session() as session, session.begin():
        user = await session.get(User, user_id)
        assert user is not None
        user.is_superadmin = True
    kit.events.audit("admin.superadmin_created", tenant_id=platform.id, target=str(user_id))
    return user_id
