"""Administration API: members, invitations, roles, and platform tenant management."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tenantkit.context import TenantRef
from tenantkit.db.models import Membership, Role, Tenant, User
from tenantkit.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from tenantkit.http import parse_body, path_uuid
from tenantkit.openapi import describe
from tenantkit.openapi.schemas import (
    InvitationOut,
    MemberPage,
    RoleChangeOut,
    RoleOut,
    RolePage,
    TenantOut,
    TenantPage,
)
from tenantkit.rbac.decorators import current_permissions, requires_permissions
from tenantkit.rbac.registry import PermissionRegistry
from tenantkit.rbac.roles import ADMIN, BUILTIN_ROLES, SUPER_ADMIN
from tenantkit.rbac.schemas import InvitationIn, RoleChangeIn, RoleIn, RolePatchIn, TenantPatchIn

if TYPE_CHECKING:
    from tenantkit.kit import TenantKit

__all__ = ["admin_routes"]


def admin_routes(kit: TenantKit) -> list[BaseRoute]:
    """Routes of the tenant administration and platform APIs."""
    depth = kit.settings.max_json_depth
    registry = kit.permissions

    async def grantable(tenant: TenantRef, role: str) -> frozenset[str]:
        if role == SUPER_ADMIN:
            raise PermissionDeniedError("SUPER_ADMIN is granted from the command line only.")
        if role not in BUILTIN_ROLES:
            async with kit.database.session() as session:
                exists = await session.get(Role, (tenant.id, role))
            if exists is None:
                raise ValidationError(
                    [{"loc": ["body", "role"], "msg": "unknown role", "type": "value_error"}]
                )
        return await kit.roles.permissions(tenant.id, role)

    def ensure_within(actor: frozenset[str], wanted: frozenset[str]) -> None:
        if not wanted <= actor:
            raise PermissionDeniedError("You cannot grant permissions you do not hold.")

    async def admins_left(tenant_id: uuid.UUID, excluding: uuid.UUID) -> int:
        async with kit.database.session() as session:
            count = await session.scalar(
                select(func.count()).where(
                    Membership.tenant_id == tenant_id,
                    Membership.role == ADMIN,
                    Membership.user_id != excluding,
                )
            )
        return int(count or 0)

    async def member(tenant_id: uuid.UUID, user_id: uuid.UUID) -> Membership:
        async with kit.database.session() as session:
            found = await session.get(Membership, (tenant_id, user_id))
        if found is None:
            raise NotFoundError("No such member.")
        return found

    @describe(
        summary="Members of the current tenant",
        response=MemberPage,
        tags=["users"],
    )
    @requires_permissions("users.read")
    async def list_users(request: Request) -> Response:
        _, tenant, _, _ = await current_permissions(request)
        async with kit.database.session() as session:
            rows = await session.execute(
                select(User.id, User.email, Membership.role, Membership.created_at)
                .join(Membership, Membership.user_id == User.id)
                .where(Membership.tenant_id == tenant.id)
                .order_by(User.email)
            )
            items = [
                {"id": str(uid), "email": email, "role": role, "joined_at": joined.isoformat()}
                for uid, email, role, joined in rows.all()
            ]
        return JSONResponse({"items": items, "next_cursor": None})

    @describe(
        summary="Invite someone (the token is also emailed)",
        body=InvitationIn,
        response=InvitationOut,
        status=201,
        responses={403: "The role grants permissions you do not hold.", 409: "Already a member."},
        tags=["users"],
    )
    @requires_permissions("users.invite")
    async def invite(request: Request) -> Response:
        principal, tenant, _, granted = await current_permissions(request)
        body = await parse_body(request, InvitationIn, max_depth=depth)
        ensure_within(granted, await grantable(tenant, body.role))
        invitation, token = await kit.tenancy.create_invitation(
            tenant, email=body.email, role=body.role, invited_by=principal.user_id
        )
        return JSONResponse(
            {
                "id": str(invitation.id),
                "email": invitation.email,
                "role": invitation.role,
                "expires_at": invitation.expires_at.isoformat(),
                "invite_token": token,
            },
            201,
            headers={"Cache-Control": "no-store"},
        )

    @describe(
        summary="Change a member's role",
        body=RoleChangeIn,
        response=RoleChangeOut,
        responses={404: "No such member.", 409: "The tenant's last ADMIN."},
        tags=["users"],
    )
    @requires_permissions("users.update")
    async def change_role(request: Request) -> Response:
        principal, tenant, _, granted = await current_permissions(request)
        user_id = path_uuid(request, "user_id", missing="No such member.")
        body = await parse_body(request, RoleChangeIn, max_depth=depth)
        target = await member(tenant.id, user_id)
        if user_id == principal.user_id:
            raise PermissionDeniedError("You cannot change your own role.")
        ensure_within(granted, await kit.roles.permissions(tenant.id, target.role))
        ensure_within(granted, await grantable(tenant, body.role))
        if target.role == ADMIN and body.role != ADMIN and await admins_left(tenant.id, user_id) == 0:
            raise ConflictError("A tenant keeps at least one ADMIN.")
        async with kit.database.session() as session, session.begin():
            row = await session.get(Membership, (tenant.id, user_id), with_for_update=True)
            if row is None:
                raise NotFoundError("No such member.")
            previous, row.role = row.role, body.role
        await kit.directory.membership_changed(tenant.id, user_id)
        await kit.emit(
            "on_membership_changed",
            tenant_id=str(tenant.id),
            user_id=str(user_id),
            role=body.role,
            actor_id=str(principal.user_id),
        )
        kit.audit(
            "membership.role_changed",
            tenant_id=tenant.id,
            actor_id=principal.user_id,
            target=str(user_id),
            data={"from": previous, "to": body.role},
        )
        return JSONResponse({"id": str(user_id), "role": body.role})

    @describe(
        summary="Remove a member (their sessions in this tenant end)",
        status=204,
        responses={404: "No such member.", 409: "The tenant's last ADMIN."},
        tags=["users"],
    )
    @requires_permissions("users.delete")
    async def remove_user(request: Request) -> Response:
        principal, tenant, _, granted = await current_permissions(request)
        user_id = path_uuid(request, "user_id", missing="No such member.")
        target = await member(tenant.id, user_id)
        ensure_within(granted, await kit.roles.permissions(tenant.id, target.role))
        if target.role == ADMIN and await admins_left(tenant.id, user_id) == 0:
            raise ConflictError("A tenant keeps at least one ADMIN.")
        async with kit.database.session() as session, session.begin():
            row = await session.get(Membership, (tenant.id, user_id))
            if row is not None:
                await session.delete(row)
        await kit.directory.membership_changed(tenant.id, user_id)
        await kit.sessions.end_member_sessions(user_id, tenant.id, reason="membership_removed")
        await kit.emit(
            "on_membership_changed",
            tenant_id=str(tenant.id),
            user_id=str(user_id),
            role=None,
            actor_id=str(principal.user_id),
        )
        kit.audit("membership.removed", tenant_id=tenant.id, actor_id=principal.user_id, target=str(user_id))
        return Response(status_code=204)

    def role_json(
        name: str, permissions: frozenset[str], *, builtin: bool, description: str = ""
    ) -> dict[str, Any]:
        return {
            "name": name,
            "builtin": builtin,
            "description": description,
            "permissions": sorted(permissions),
        }

    def check_patterns(patterns: list[str]) -> None:
        errors = [
            {"loc": ["body", "permissions", i], "msg": f"unknown permission {p!r}", "type": "value_error"}
            for i, p in enumerate(patterns)
            if not PermissionRegistry.valid_pattern(p) or not registry.expand([p])
        ]
        if errors:
            raise ValidationError(errors)

    @describe(
        summary="Built-in and custom roles",
        response=RolePage,
        tags=["roles"],
    )
    @requires_permissions("roles.manage")
    async def list_roles(request: Request) -> Response:
        _, tenant, _, _ = await current_permissions(request)
        items = []
        for name in BUILTIN_ROLES:
            if name != SUPER_ADMIN:
                items.append(role_json(name, await kit.roles.permissions(tenant.id, name), builtin=True))
        async with kit.database.session() as session:
            rows = (
                await session.scalars(select(Role).where(Role.tenant_id == tenant.id).order_by(Role.name))
            ).all()
        items += [
            role_json(r.name, registry.expand(r.permissions), builtin=False, description=r.description)
            for r in rows
        ]
        return JSONResponse({"items": items, "next_cursor": None})

    @describe(
        summary="Create a custom role",
        body=RoleIn,
        response=RoleOut,
        status=201,
        responses={409: "The role exists, or is built in."},
        tags=["roles"],
    )
    @requires_permissions("roles.manage")
    async def create_role(request: Request) -> Response:
        principal, tenant, _, granted = await current_permissions(request)
        body = await parse_body(request, RoleIn, max_depth=depth)
        if body.name.upper() in BUILTIN_ROLES:
            raise ConflictError("Built-in roles cannot be redefined.")
        check_patterns(body.permissions)
        expanded = registry.expand(body.permissions)
        ensure_within(granted, expanded)
        try:
            async with kit.database.session() as session, session.begin():
                session.add(
                    Role(
                        tenant_id=tenant.id,
                        name=body.name,
                        permissions=body.permissions,
                        description=body.description,
                    )
                )
        except IntegrityError:
            raise ConflictError("A role with this name exists.") from None
        await kit.roles.role_changed(tenant.id, body.name)
        kit.audit("role.created", tenant_id=tenant.id, actor_id=principal.user_id, target=body.name)
        return JSONResponse(role_json(body.name, expanded, builtin=False, description=body.description), 201)

    async def custom_role(tenant: TenantRef, name: str) -> Role:
        if name.upper() in BUILTIN_ROLES:
            raise PermissionDeniedError("Built-in roles cannot be changed.")
        async with kit.database.session() as session:
            role = await session.get(Role, (tenant.id, name))
        if role is None:
            raise NotFoundError("No such role.")
        return role

    @describe(
        summary="Change a custom role",
        body=RolePatchIn,
        response=RoleOut,
        responses={403: "Built-in role, or permissions you do not hold.", 404: "No such role."},
        tags=["roles"],
    )
    @requires_permissions("roles.manage")
    async def update_role(request: Request) -> Response:
        principal, tenant, _, granted = await current_permissions(request)
        name = request.path_params["name"]
        body = await parse_body(request, RolePatchIn, max_depth=depth)
        role = await custom_role(tenant, name)
        ensure_within(granted, registry.expand(role.permissions))
        async with kit.database.session() as session, session.begin():
            row = await session.get(Role, (tenant.id, name), with_for_update=True)
            assert row is not None
            if body.permissions is not None:
                check_patterns(body.permissions)
                ensure_within(granted, registry.expand(body.permissions))
                row.permissions = body.permissions
            if body.description is not None:
                row.description = body.description
            result = role_json(
                name, registry.expand(row.permissions), builtin=False, description=row.description
            )
        await kit.roles.role_changed(tenant.id, name)
        kit.audit("role.updated", tenant_id=tenant.id, actor_id=principal.user_id, target=name)
        return JSONResponse(result)

    @describe(
        summary="Delete a custom role",
        status=204,
        responses={404: "No such role.", 409: "Members still hold the role."},
        tags=["roles"],
    )
    @requires_permissions("roles.manage")
    async def delete_role(request: Request) -> Response:
        principal, tenant, _, granted = await current_permissions(request)
        name = request.path_params["name"]
        role = await custom_role(tenant, name)
        ensure_within(granted, registry.expand(role.permissions))
        async with kit.database.session() as session, session.begin():
            holders = await session.scalar(
                select(func.count()).where(Membership.tenant_id == tenant.id, Membership.role == name)
            )
            if holders:
                raise ConflictError("Members still hold this role; reassign them first.")
            row = await session.get(Role, (tenant.id, name))
            if row is not None:
                await session.delete(row)
        await kit.roles.role_changed(tenant.id, name)
        kit.audit("role.deleted", tenant_id=tenant.id, actor_id=principal.user_id, target=name)
        return Response(status_code=204)

    async def operator(request: Request) -> uuid.UUID:
        principal, _, _, _ = await current_permissions(request)
        async with kit.database.session() as session:
            flag = await session.scalar(select(User.is_superadmin).where(User.id == principal.user_id))
        if not flag:
            raise PermissionDeniedError("Platform operators only.")
        return principal.user_id

    def tenant_json(t: Tenant) -> dict[str, Any]:
        return {
            "id": str(t.id),
            "slug": t.slug,
            "name": t.name,
            "status": t.status,
            "open_signup": t.open_signup,
            "created_at": t.created_at.isoformat(),
        }

    @describe(
        summary="Every tenant (platform operators)",
        response=TenantPage,
        tags=["admin"],
    )
    @requires_permissions("tenants.manage")
    async def list_tenants(request: Request) -> Response:
        actor = await operator(request)
        async with kit.database.session() as session:
            rows = (await session.scalars(select(Tenant).order_by(Tenant.created_at))).all()
        kit.audit("admin.tenants_listed", actor_id=actor)
        return JSONResponse({"items": [tenant_json(t) for t in rows], "next_cursor": None})

    @describe(
        summary="Suspend, reactivate or rename a tenant (platform operators)",
        body=TenantPatchIn,
        response=TenantOut,
        responses={404: "No such tenant."},
        tags=["admin"],
    )
    @requires_permissions("tenants.manage")
    async def patch_tenant(request: Request) -> Response:
        actor = await operator(request)
        tenant_id = path_uuid(request, "tenant_id", missing="No such tenant.")
        body = await parse_body(request, TenantPatchIn, max_depth=depth)
        async with kit.database.session() as session, session.begin():
            tenant = await session.get(Tenant, tenant_id, with_for_update=True)
            if tenant is None:
                raise NotFoundError("No such tenant.")
            changes = body.model_dump(exclude_none=True)
            for field, value in changes.items():
                setattr(tenant, field, value)
            result = tenant_json(tenant)
        await kit.directory.tenant_changed(tenant_id, result["slug"])
        kit.audit("admin.tenant_updated", tenant_id=tenant_id, actor_id=actor, data=changes)
        return JSONResponse(result)

    return [
        Route("/users", list_users, methods=["GET"], name="users:list"),
        Route("/users/invitations", invite, methods=["POST"], name="users:invite"),
        Route("/users/{user_id}/role", change_role, methods=["PATCH"], name="users:role"),
        Route("/users/{user_id}", remove_user, methods=["DELETE"], name="users:remove"),
        Route("/roles", list_roles, methods=["GET"], name="roles:list"),
        Route("/roles", create_role, methods=["POST"], name="roles:create"),
        Route("/roles/{name}", update_role, methods=["PATCH"], name="roles:update"),
        Route("/roles/{name}", delete_role, methods=["DELETE"], name="roles:delete"),
        Route("/admin/tenants", list_tenants, methods=["GET"], name="admin:tenants"),
        Route("/admin/tenants/{tenant_id}", patch_tenant, methods=["PATCH"], name="admin:tenant"),
    ]
