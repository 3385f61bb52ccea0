"""tenantkit: multi-tenancy, authentication, RBAC and job hooks for Starlette/ASGI apps."""

from __future__ import annotations

from tenantkit.context import (
    Principal,
    TenantRef,
    current_client_ip,
    current_principal,
    current_request_id,
    current_tenant,
    current_tenant_id,
    tenant_context,
)
from tenantkit.db import Base, Database
from tenantkit.db.scoping import TenantScoped, unscoped
from tenantkit.errors import (
    AccountExistsError,
    AccountLockedError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    ExpiredTokenError,
    FederatedLoginRefusedError,
    InvalidTokenError,
    MfaEnrollmentRequiredError,
    MissingDependencyError,
    NotFoundError,
    OidcError,
    PermissionDeniedError,
    ProblemError,
    RateLimitedError,
    ServiceUnavailableError,
    SsoRequiredError,
    TenantForbiddenError,
    TenantKitError,
    TenantNotFoundError,
    TenantRequiredError,
    TenantScopeError,
    TokenReuseError,
    ValidationError,
)
from tenantkit.http import RequestModel, SafeText, json_response, parse_body, parse_query, path_uuid
from tenantkit.kit import TenantKit
from tenantkit.openapi import describe
from tenantkit.plugins import hookimpl
from tenantkit.rbac.decorators import (
    authorize,
    current_permissions,
    requires_auth,
    requires_permissions,
    requires_roles,
)
from tenantkit.settings import Settings
from tenantkit.stores import MemoryStore, Store

__version__ = "0.1.0"

__all__ = [
    "AccountExistsError",
    "AccountLockedError",
    "AuthenticationError",
    "BadRequestError",
    "Base",
    "ConfigurationError",
    "ConflictError",
    "Database",
    "ExpiredTokenError",
    "FederatedLoginRefusedError",
    "InvalidTokenError",
    "MemoryStore",
    "MfaEnrollmentRequiredError",
    "MissingDependencyError",
    "NotFoundError",
    "OidcError",
    "PermissionDeniedError",
    "Principal",
    "ProblemError",
    "RateLimitedError",
    "RequestModel",
    "SafeText",
    "ServiceUnavailableError",
    "Settings",
    "SsoRequiredError",
    "Store",
    "TenantForbiddenError",
    "TenantKit",
    "TenantKitError",
    "TenantNotFoundError",
    "TenantRef",
    "TenantRequiredError",
    "TenantScopeError",
    "TenantScoped",
    "TokenReuseError",
    "ValidationError",
    "__version__",
    "authorize",
    "current_client_ip",
    "current_permissions",
    "current_principal",
    "current_request_id",
    "current_tenant",
    "current_tenant_id",
    "describe",
    "hookimpl",
    "json_response",
    "parse_body",
    "parse_query",
    "path_uuid",
    "requires_auth",
    "requires_permissions",
    "requires_roles",
    "tenant_context",
    "unscoped",
]
