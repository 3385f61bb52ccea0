"""Tenancy: ORM scoping, row-level security, tenant resolution."""

from __future__ import annotations

from tenantkit.tenancy.rls import disable_rls, enable_rls
from tenantkit.tenancy.scoping import TenantScoped, is_unscoped, scoped_get, unscoped

__all__ = ["TenantScoped", "disable_rls", "enable_rls", "is_unscoped", "scoped_get", "unscoped"]
