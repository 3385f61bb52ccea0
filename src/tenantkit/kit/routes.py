"""The routes a :class:`~tenantkit.kit.TenantKit` mounts, assembled from its collaborators."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute, Route

from tenantkit.audit import AuditRoutes
from tenantkit.auth.apikey_routes import ApiKeyRoutes
from tenantkit.auth.impersonation import Impersonation
from tenantkit.auth.impersonation_routes import ImpersonationRoutes
from tenantkit.auth.mfa_routes import TwoFactorRoutes
from tenantkit.auth.routes import AuthRoutes
from tenantkit.health import health_endpoint
from tenantkit.observability.metrics import metrics_endpoint
from tenantkit.openapi import describe
from tenantkit.tenancy.tenant_routes import TenantRoutes

if TYPE_CHECKING:
    from tenantkit.kit import TenantKit

__all__ = ["kit_routes"]


def kit_routes(kit: TenantKit) -> list[BaseRoute]:
    """Health, metrics, auth, administration, audit, jobs and local files, in mounting order."""
    from tenantkit.federation.sso_routes import SsoRoutes
    from tenantkit.files import LocalStorage, local_file_routes
    from tenantkit.jobs import job_routes
    from tenantkit.rbac.routes import RoleRoutes
    from tenantkit.tenancy.platform import PlatformRoutes
    from tenantkit.tenancy.routes import MemberRoutes

    depth = kit.settings.max_json_depth

    auth = AuthRoutes(
        kit.settings,
        accounts=kit.accounts,
        sessions=kit.sessions,
        tenancy=kit.tenancy,
        directory=kit.directory,
        keys=kit.keys,
        rate_limiter=kit.rate_limiter,
        background=kit.background,
    )
    files = local_file_routes(kit.storage) if isinstance(kit.storage, LocalStorage) else []
    from tenantkit.federation.routes import FederationRoutes

    federation = FederationRoutes(
        kit.settings,
        client=kit.oidc_client,
        flows=kit.oidc_flows,
        signin=kit.federated_signin,
        verification=kit.email_verification,
        rate_limiter=kit.rate_limiter,
        events=kit.events,
        pair_response=auth.pair_response,
        tenant_providers=kit.tenant_providers,
    )
    return [
        Route(
            "/health",
            health_endpoint(kit.database, kit.store, kit.jobs),
            methods=["GET"],
            name="health",
        ),
        Route("/metrics", _metrics_endpoint(kit), methods=["GET"], name="metrics"),
        *auth.routes(),
        *TwoFactorRoutes(
            kit.mfa, kit.sessions, kit.accounts, pair_response=auth.pair_response, max_json_depth=depth
        ).routes(),
        *TenantRoutes(kit.tenancy, max_json_depth=depth).routes(),
        *SsoRoutes(kit.sso, max_json_depth=depth).routes(),
        *ApiKeyRoutes(kit.api_keys, max_json_depth=depth).routes(),
        *federation.routes(),
        *ImpersonationRoutes(
            Impersonation(database=kit.database, tokens=kit.tokens, events=kit.events),
            max_json_depth=depth,
        ).routes(),
        *MemberRoutes(kit.tenancy, max_json_depth=depth).routes(),
        *RoleRoutes(kit.roles, kit.permissions, kit.database, kit.events, max_json_depth=depth).routes(),
        *PlatformRoutes(kit.tenancy, kit.events, max_json_depth=depth).routes(),
        *AuditRoutes(kit.audit_log).routes(),
        *job_routes(kit.jobs, kit.database, kit.events),
        *files,
        *_scim_routes(kit),
        *_console_routes(kit),
    ]


def _scim_routes(kit: TenantKit) -> list[BaseRoute]:
    """``/tenant/scim-tokens``, and ``/scim/v2`` when scim2-models (the ``scim`` extra) is installed."""
    import importlib.util

    from tenantkit.scim.token_routes import ScimTokenRoutes

    depth = kit.settings.max_json_depth
    routes = ScimTokenRoutes(kit.scim_tokens, max_json_depth=depth).routes()
    if importlib.util.find_spec("scim2_models") is None:
        return routes
    from tenantkit.scim.routes import ScimRoutes
    from tenantkit.scim.service import ScimDirectory

    directory = ScimDirectory(database=kit.database, tenancy=kit.tenancy, roles=kit.roles, events=kit.events)
    protocol = ScimRoutes(
        tokens=kit.scim_tokens,
        directory=directory,
        tenants=kit.directory,
        limiter=kit.rate_limiter,
        token_rate=kit.settings.rate_limit_api,
        failure_rate=kit.settings.rate_limit_auth,
        max_json_depth=depth,
    )
    return [*routes, *protocol.routes()]


def _console_routes(kit: TenantKit) -> list[BaseRoute]:
    """The administration console at ``settings.console_path`` (none when it is empty)."""
    if not kit.settings.console_path:
        return []
    from tenantkit.console import console_routes, panels_from_hook

    return console_routes(
        kit.settings.console_path, panels=panels_from_hook(kit.hook.tenantkit_console_panels())
    )


def _metrics_endpoint(kit: TenantKit) -> Any:
    endpoint = metrics_endpoint(kit.metrics, kit.settings.metrics_token)
    return describe(
        summary="Prometheus metrics",
        media_type="text/plain",
        responses={401: "TENANTKIT_METRICS_TOKEN is set and the bearer token is missing or wrong."},
        tags=["platform"],
        public=True,
        rate_limited=False,
    )(endpoint)
