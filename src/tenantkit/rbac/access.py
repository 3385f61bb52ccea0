"""``Access``: the caller's live role and permissions in a tenant, and resource policies.

The permission guards find it in ``scope["state"]["access"]``, where the
authentication middleware publishes it; nothing reaches for the kit.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import pluggy

from tenantkit.context import Principal
from tenantkit.rbac.roles import RoleBook

__all__ = ["Access", "MembershipLookup"]


class MembershipLookup(Protocol):
    """Reads a member's current role (``TenantDirectory`` in the kit, cached in process)."""

    async def role_of(self, tenant_id: uuid.UUID | str, user_id: uuid.UUID | str) -> str | None:
        """The role of ``user_id`` in ``tenant_id``, or ``None`` when not a member."""


class Access:
    """Answers "what may this caller do here?".

    Args:
        memberships: Reads the live role (so a role change counts on the next request).
        roles: Expands a role into permission codes.
        hook: The plugin hooks (``tenantkit_authorize`` decides resource policies).
        enrolled: Whether a user has a second factor (for tenants that require one).
    """

    def __init__(
        self,
        memberships: MembershipLookup,
        roles: RoleBook,
        hook: pluggy.HookRelay,
        *,
        enrolled: Callable[[uuid.UUID], Awaitable[bool]] | None = None,
    ) -> None:
        self.memberships = memberships
        self.roles = roles
        self.hook = hook
        self._enrolled = enrolled

    async def enrolled(self, user_id: uuid.UUID) -> bool:
        """Whether ``user_id`` signs in with a second factor (``False`` when 2FA is not wired)."""
        return self._enrolled is not None and await self._enrolled(user_id)

    async def grants(
        self, tenant_id: uuid.UUID, user_id: uuid.UUID, *, scopes: tuple[str, ...] | None = None
    ) -> tuple[str, frozenset[str]] | None:
        """The live role and permissions of ``user_id`` in ``tenant_id``, or ``None`` for a non-member.

        ``scopes`` (an API key's) narrow the permissions to those the patterns
        name, within what the user holds at this moment.
        """
        role = await self.memberships.role_of(tenant_id, user_id)
        if role is None:
            return None
        permissions = await self.roles.permissions(tenant_id, role)
        if scopes is not None:
            permissions = self.roles.registry.expand(scopes) & permissions
        return role, permissions

    def policy(self, principal: Principal, permission: str, resource: Any) -> bool | None:
        """What the plugins' ``tenantkit_authorize`` say (``None``: no opinion, the role decides)."""
        verdict: bool | None = self.hook.tenantkit_authorize(
            principal=principal, permission=permission, resource=resource
        )
        return verdict
