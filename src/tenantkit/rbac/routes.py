"""The per-tenant roles API: ``GET/POST /roles``, ``PATCH/DELETE /roles/{name}``.

Members, invitations and the platform's tenant API live in
:mod:`tenantkit.tenancy.routes` and :mod:`tenantkit.tenancy.platform`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tenantkit.context import TenantRef, tenant_context
from tenantkit.db.engine import Database
from tenantkit.db.models import Membership, Role
from tenantkit.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from tenantkit.events import Events
from tenantkit.http import json_response, parse_body
from tenantkit.openapi import describe
from tenantkit.rbac.decorators import current_permissions, requires_permissions
from tenantkit.rbac.registry import PermissionRegistry
from tenantkit.rbac.roles import BUILTIN_ROLES, SUPER_ADMIN, RoleBook
from tenantkit.rbac.schemas import RoleIn, RoleOut, RolePage, RolePatchIn, role_bodies
from tenantkit.routing import DESCRIPTION_ATTRIBUTE

Endpoint = Callable[[Request], Awaitable[Response]]

__all__ = ["RoleRoutes"]


def _within(held: frozenset[str], wanted: frozenset[str]) -> None:
    if not wanted <= held:
        raise PermissionDeniedError("You cannot grant permissions you do not hold.")


def _documenting(handler: Endpoint, **changes: Any) -> Endpoint:
    """``handler`` with its ``describe(...)`` changed for this instance (the body's documented enum)."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        return await handler(request)

    setattr(endpoint, DESCRIPTION_ATTRIBUTE, {**getattr(handler, DESCRIPTION_ATTRIBUTE), **changes})
    return endpoint


class RoleRoutes:
    """Built-in and custom roles of the current tenant (permission ``roles.manage``).

    Args:
        roles: What each role grants (its cache is invalidated after a change).
        registry: The permission codes roles may name.
        database: Where custom roles live.
        events: Audit rows.
        max_json_depth: Deepest JSON body accepted.
    """

    def __init__(
        self,
        roles: RoleBook,
        registry: PermissionRegistry,
        database: Database,
        events: Events,
        *,
        max_json_depth: int = 32,
    ) -> None:
        self.roles = roles
        self.registry = registry
        self.database = database
        self.events = events
        self.depth = max_json_depth
        self.role_in, self.role_patch_in = role_bodies(self._grantable)

    def _grantable(self) -> list[str]:
        """Every code and wildcard a role may name: those matching at least one tenant permission."""
        codes = self.registry.tenant_codes
        return sorted({*codes, *(code.split(".", 1)[0] + ".*" for code in codes), *(("*",) if codes else ())})

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/roles", self.list_roles, methods=["GET"], name="roles:list"),
            Route(
                "/roles",
                _documenting(self.create_role, body=self.role_in),
                methods=["POST"],
                name="roles:create",
            ),
            Route(
                "/roles/{name}",
                _documenting(self.update_role, body=self.role_patch_in),
                methods=["PATCH"],
                name="roles:update",
            ),
            Route("/roles/{name}", self.delete_role, methods=["DELETE"], name="roles:delete"),
        ]

    def _out(
        self, name: str, permissions: frozenset[str], *, builtin: bool, description: str = ""
    ) -> RoleOut:
        return RoleOut(name=name, builtin=builtin, description=description, permissions=sorted(permissions))

    def _check_patterns(self, patterns: list[str]) -> None:
        errors = [
            {"loc": ["body", "permissions", i], "msg": f"unknown permission {p!r}", "type": "value_error"}
            for i, p in enumerate(patterns)
            if not PermissionRegistry.valid_pattern(p) or not self.registry.expand([p])
        ]
        if errors:
            raise ValidationError(errors)

    async def _custom(self, tenant: TenantRef, name: str) -> Role:
        if name.upper() in BUILTIN_ROLES:
            raise PermissionDeniedError("Built-in roles cannot be changed.")
        with tenant_context(tenant):
            async with self.database.session() as session:
                role = await session.get(Role, (tenant.id, name))
        if role is None:
            raise NotFoundError("No such role.")
        return role

    @describe(summary="Built-in and custom roles", response=RolePage, tags=["roles"])
    @requires_permissions("roles.manage")
    async def list_roles(self, request: Request) -> Response:
        _, tenant, _, _ = await current_permissions(request)
        items = [
            self._out(name, await self.roles.permissions(tenant.id, name), builtin=True)
            for name in BUILTIN_ROLES
            if name != SUPER_ADMIN
        ]
        with tenant_context(tenant):
            async with self.database.read_session() as session:
                rows = (
                    await session.scalars(select(Role).where(Role.tenant_id == tenant.id).order_by(Role.name))
                ).all()
        items += [
            self._out(r.name, self.registry.expand(r.permissions), builtin=False, description=r.description)
            for r in rows
        ]
        return json_response(RolePage(items=items, next_cursor=None))

    @describe(
        summary="Create a custom role",
        body=RoleIn,
        response=RoleOut,
        status=201,
        responses={409: "The role exists, or is built in."},
        tags=["roles"],
    )
    @requires_permissions("roles.manage")
    async def create_role(self, request: Request) -> Response:
        principal, tenant, _, granted = await current_permissions(request)
        body = await parse_body(request, RoleIn, max_depth=self.depth)
        if body.name.upper() in BUILTIN_ROLES:
            raise ConflictError("Built-in roles cannot be redefined.")
        self._check_patterns(body.permissions)
        expanded = self.registry.expand(body.permissions)
        _within(granted, expanded)
        try:
            with tenant_context(tenant):
                async with self.database.session() as session, session.begin():
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
        await self.roles.role_changed(tenant.id, body.name)
        self.events.audit("role.created", tenant_id=tenant.id, actor_id=principal.user_id, target=body.name)
        return json_response(self._out(body.name, expanded, builtin=False, description=body.description), 201)

    @describe(
        summary="Change a custom role",
        body=RolePatchIn,
        response=RoleOut,
        responses={403: "Built-in role, or permissions you do not hold.", 404: "No such role."},
        tags=["roles"],
    )
    @requires_permissions("roles.manage")
    async def update_role(self, request: Request) -> Response:
        principal, tenant, _, granted = await current_permissions(request)
        name = request.path_params["name"]
        body = await parse_body(request, RolePatchIn, max_depth=self.depth)
        role = await self._custom(tenant, name)
        _within(granted, self.registry.expand(role.permissions))
        with tenant_context(tenant):
            async with self.database.session() as session, session.begin():
                row = await session.get(Role, (tenant.id, name), with_for_update=True)
                if row is None:
                    raise NotFoundError("No such role.")
                if body.permissions is not None:
                    self._check_patterns(body.permissions)
                    _within(granted, self.registry.expand(body.permissions))
                    row.permissions = body.permissions
                if body.description is not None:
                    row.description = body.description
                result = self._out(
                    name, self.registry.expand(row.permissions), builtin=False, description=row.description
                )
        await self.roles.role_changed(tenant.id, name)
        self.events.audit("role.updated", tenant_id=tenant.id, actor_id=principal.user_id, target=name)
        return json_response(result)

    @describe(
        summary="Delete a custom role",
        status=204,
        responses={404: "No such role.", 409: "Members still hold the role."},
        tags=["roles"],
    )
    @requires_permissions("roles.manage")
    async def delete_role(self, request: Request) -> Response:
        principal, tenant, _, granted = await current_permissions(request)
        name = request.path_params["name"]
        role = await self._custom(tenant, name)
        _within(granted, self.registry.expand(role.permissions))
        with tenant_context(tenant):
            async with self.database.session() as session, session.begin():
                holders = await session.scalar(
                    select(func.count()).where(Membership.tenant_id == tenant.id, Membership.role == name)
                )
                if holders:
                    raise ConflictError("Members still hold this role; reassign them first.")
                row = await session.get(Role, (tenant.id, name))
                if row is not None:
                    await session.delete(row)
        await self.roles.role_changed(tenant.id, name)
        self.events.audit("role.deleted", tenant_id=tenant.id, actor_id=principal.user_id, target=name)
        return Response(status_code=204)
