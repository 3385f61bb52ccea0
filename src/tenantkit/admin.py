"""Operator tasks behind the ``tenantkit`` command: tenants, users, platform operators."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from tenantkit.context import TenantRef
from tenantkit.db.models import Membership, Tenant, User
from tenantkit.errors import ConflictError
from tenantkit.kit import TenantKit
from tenantkit.normalize import normalize_email, normalize_slug
from tenantkit.rbac.roles import SUPER_ADMIN
from tenantkit.tenancy.directory import tenant_ref

__all__ = ["PLATFORM_SLUG", "create_superadmin", "create_tenant", "create_user"]

PLATFORM_SLUG = "platform"


async def create_tenant(
    kit: TenantKit, name: str, slug: str | None = None, *, open_signup: bool = False
) -> TenantRef:
    """Create a tenant (409 semantics: raises ``ConflictError`` when the slug is taken)."""
    from tenantkit.normalize import slugify

    final_slug = normalize_slug(slug) if slug else slugify(name)
    async with kit.database.session() as session, session.begin():
        if await session.scalar(select(Tenant.id).where(Tenant.slug == final_slug)) is not None:
            raise ConflictError(f"tenant slug {final_slug!r} is taken")
        tenant = Tenant(name=name, slug=final_slug, open_signup=open_signup)
        session.add(tenant)
        await session.flush()
        ref = tenant_ref(tenant)
    await kit.emit("on_tenant_created", tenant=ref, owner_id=None)
    kit.audit("tenant.created", tenant_id=ref.id, data={"via": "cli"})
    return ref


async def create_user(
    kit: TenantKit, email: str, password: str, *, tenant: TenantRef | None = None, role: str = "USER"
) -> uuid.UUID:
    """Create a user (or reuse one with that email) and optionally a membership."""
    address = normalize_email(email)
    password_hash = await kit.passwords.hash(password)
    async with kit.database.session() as session, session.begin():
        user = await session.scalar(select(User).where(User.email == address))
        if user is None:
            user = User(email=address, password_hash=password_hash)
            session.add(user)
            await session.flush()
        if tenant is not None:
            membership = await session.get(Membership, (tenant.id, user.id))
            if membership is None:
                session.add(Membership(tenant_id=tenant.id, user_id=user.id, role=role))
            else:
                membership.role = role
        user_id = user.id
    if tenant is not None:
        await kit.directory.membership_changed(tenant.id, user_id)
    return user_id


async def create_superadmin(kit: TenantKit, email: str, password: str) -> uuid.UUID:
    """A platform operator: flagged user with the SUPER_ADMIN role in the ``platform`` tenant."""
    platform = await kit.directory.find(PLATFORM_SLUG)
    if platform is None:
        platform = await create_tenant(kit, "Platform", PLATFORM_SLUG)
    user_id = await create_user(kit, email, password, tenant=platform, role=SUPER_ADMIN)
    async with kit.database.session() as session, session.begin():
        user = await session.get(User, user_id)
        assert user is not None
        user.is_superadmin = True
    kit.audit("admin.superadmin_created", tenant_id=platform.id, target=str(user_id))
    return user_id
