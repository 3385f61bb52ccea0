"""An example tenantkit plugin, published under the ``tenantkit`` entry-point group.

It shows one hook of each kind:

* ``tenantkit_configure`` keeps a reference to the kit;
* ``tenantkit_register_permissions`` adds ``logins.read``;
* ``tenantkit_access_token_claims`` adds ``amr: ["pwd"]`` (RFC 8176) to every
  access token;
* ``tenantkit_authorize`` (``firstresult``, so synchronous) denies acting on a
  resource owned by someone else unless the caller is an ADMIN or SUPER_ADMIN;
* ``tenantkit_on_login`` (``async``, awaited by tenantkit) and
  ``tenantkit_on_login_failed`` record sign-ins, which :meth:`ExamplePlugin.routes`
  serves at ``GET /example/logins`` to holders of ``logins.read``.

Sign-ins are kept in memory, per process: a real plugin would write them to
its own table (see ``tenantkit_migration_locations``) or ship them elsewhere.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tenantkit import Principal, hookimpl
from tenantkit.rbac import current_permissions, requires_permissions

if TYPE_CHECKING:
    from tenantkit import TenantKit

__all__ = ["LOGINS_READ", "OWNER_EXEMPT_ROLES", "ExamplePlugin", "owner_of", "plugin"]

__version__ = "0.1.0"

LOGINS_READ = "logins.read"
#: Roles the ownership rule leaves to the permission check.
OWNER_EXEMPT_ROLES = frozenset({"ADMIN", "SUPER_ADMIN"})


def owner_of(resource: Any) -> str | None:
    """The ``owner_id`` of a mapping or an object, as a string, or ``None``."""
    owner = resource.get("owner_id") if isinstance(resource, Mapping) else getattr(resource, "owner_id", None)
    return None if owner is None else str(owner)


class ExamplePlugin:
    """The plugin object; tenantkit registers the instance and calls its hooks.

    Args:
        claims: Extra access-token claims (default ``{"amr": ["pwd"]}``).
        keep: How many sign-ins to remember.
    """

    def __init__(self, claims: Mapping[str, Any] | None = None, *, keep: int = 1000) -> None:
        self.claims = dict(claims) if claims is not None else {"amr": ["pwd"]}
        self.kit: TenantKit | None = None
        self.logins: deque[dict[str, Any]] = deque(maxlen=keep)
        self.failures: deque[dict[str, Any]] = deque(maxlen=keep)

    # --- start-up ------------------------------------------------------ #

    @hookimpl
    def tenantkit_configure(self, kit: TenantKit) -> None:
        """Keep the kit (its settings, store and database are available from here on)."""
        self.kit = kit

    @hookimpl
    def tenantkit_register_permissions(self) -> list[tuple[str, str]]:
        """Define ``logins.read``; ADMIN holds it automatically, USER only if the app says so."""
        return [(LOGINS_READ, "Read the tenant's recorded sign-ins (example plugin)")]

    # --- tokens and authorization ------------------------------------- #

    @hookimpl
    def tenantkit_access_token_claims(self, user_id: str, tenant_id: str, role: str) -> dict[str, Any]:
        """Add the configured claims; tenantkit drops any registered claim name."""
        return dict(self.claims)

    @hookimpl
    def tenantkit_authorize(self, principal: Principal, permission: str, resource: Any) -> bool | None:
        """Deny another member's resource; otherwise leave the decision to the role.

        Never returns ``True``: a plugin that allowed would bypass the role's
        permissions, which is rarely what an ownership rule means.
        """
        owner = owner_of(resource)
        if owner is None or principal.role in OWNER_EXEMPT_ROLES:
            return None
        return False if owner != str(principal.user_id) else None

    # --- events --------------------------------------------------------- #

    @hookimpl
    async def tenantkit_on_login(self, user_id: str, tenant_id: str, session_id: str, ip: str | None) -> None:
        """Record a sign-in (async: tenantkit awaits event hooks)."""
        self.logins.append(
            {
                "user_id": user_id,
                "tenant_id": tenant_id,
                "session_id": session_id,
                "ip": ip,
                "at": time.time(),
            }
        )

    @hookimpl
    def tenantkit_on_login_failed(self, email: str, reason: str, ip: str | None) -> None:
        """Record a failed sign-in (sync event hooks work too)."""
        self.failures.append({"email": email, "reason": reason, "ip": ip, "at": time.time()})

    # --- what the application mounts ----------------------------------- #

    def routes(self, prefix: str = "/example") -> list[BaseRoute]:
        """``GET {prefix}/logins``: the current tenant's recorded sign-ins, newest first."""

        @requires_permissions(LOGINS_READ)
        async def list_logins(request: Request) -> Response:
            _, tenant, _, _ = await current_permissions(request)
            items = [
                {**login, "at": int(login["at"])}
                for login in reversed(self.logins)
                if login["tenant_id"] == str(tenant.id)
            ]
            return JSONResponse({"items": items, "next_cursor": None}, headers={"Cache-Control": "no-store"})

        return [Route(f"{prefix}/logins", list_logins, methods=["GET"], name="example:logins")]


#: The instance the entry point publishes.
plugin = ExamplePlugin()
