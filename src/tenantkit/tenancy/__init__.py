"""Tenancy: tenant resolution and the tenancy service.

ORM scoping and row-level security live in :mod:`tenantkit.db` (every data
access uses them) and are re-exported here.
"""

from __future__ import annotations

from tenantkit.db.rls import check_rls_enforced, disable_rls, enable_rls
from tenantkit.db.scoping import (
    ScopedRead,
    TenantOwned,
    TenantScoped,
    is_unscoped,
    scoped_get,
    tenant_scope,
    unscoped,
)

__all__ = [
    "ScopedRead",
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
