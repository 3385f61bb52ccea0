"""Tenancy: ORM scoping, row-level security, tenant resolution."""

from __future__ import annotations

from tenantkit.tenancy.rls import check_rls_enforced, disable_rls, enable_rls
from tenantkit.tenancy.scoping import (
    TenantOwned,
    TenantScoped,
    is_unscoped,
    scoped_get,
    tenant_scope,
    unscoped,
)

__all__ = [
    "TenantOwned",
    "TenantScoped",
    "check_rls_enforced",
    "disable_rls",
    "enable_rls",
    "is_unscoped",
    "scoped_get",
    "tenant_scope",
    "unscoped",
]
