"""Role-based access control: permission registry, roles, decorators."""

from __future__ import annotations

from tenantkit.rbac.decorators import (
    authorize,
    current_permissions,
    request_principal,
    request_tenant,
    requires_auth,
    requires_permissions,
    requires_roles,
)
from tenantkit.rbac.registry import PermissionRegistry
from tenantkit.rbac.roles import ADMIN, BUILTIN_ROLES, SUPER_ADMIN, USER, RoleBook

__all__ = [
    "ADMIN",
    "BUILTIN_ROLES",
    "SUPER_ADMIN",
    "USER",
    "PermissionRegistry",
    "RoleBook",
    "authorize",
    "current_permissions",
    "request_principal",
    "request_tenant",
    "requires_auth",
    "requires_permissions",
    "requires_roles",
]
