"""Request and response bodies of the members, invitations and platform tenant routes.

Handlers build their responses from these models (``Model(...).model_dump(mode="json")``),
so the OpenAPI document states exactly what the server sends. Timestamps are
ISO 8601 strings in UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from tenantkit.normalize import Email, StorableText
from tenantkit.rbac.schemas import RoleName

__all__ = [
    "InvitationIn",
    "InvitationOut",
    "MemberOut",
    "MemberPage",
    "PendingInvitationOut",
    "PendingInvitationPage",
    "RoleChangeIn",
    "RoleChangeOut",
    "TenantOut",
    "TenantPage",
    "TenantPatchIn",
]

Uuid = Annotated[str, Field(json_schema_extra={"format": "uuid"})]


def iso(value: datetime) -> str:
    """A timestamp as the API shows it."""
    return value.isoformat()


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InvitationIn(_Body):
    email: Email
    role: RoleName = "USER"


class RoleChangeIn(_Body):
    role: RoleName


class TenantPatchIn(_Body):
    status: Literal["active", "suspended"] | None = None
    open_signup: bool | None = None
    name: Annotated[str, Field(min_length=1, max_length=200), StorableText()] | None = None


class MemberOut(BaseModel):
    """A member of the current tenant."""

    id: Uuid
    email: str
    role: str
    joined_at: str


class MemberPage(BaseModel):
    """Members of the current tenant."""

    items: list[MemberOut]
    next_cursor: str | None = None


class InvitationOut(BaseModel):
    """A new invitation; ``invite_token`` is shown only here (and in the email)."""

    id: Uuid
    email: str
    role: str
    expires_at: str
    invite_token: str


class PendingInvitationOut(BaseModel):
    """A pending invitation (never its token)."""

    id: Uuid
    email: str
    role: str
    invited_by: Uuid | None
    created_at: str
    expires_at: str


class PendingInvitationPage(BaseModel):
    """Pending invitations of the current tenant, newest first."""

    items: list[PendingInvitationOut]
    next_cursor: str | None = None


class RoleChangeOut(BaseModel):
    """A member's new role."""

    id: Uuid
    role: str


class TenantOut(BaseModel):
    """A tenant as platform operators see it."""

    id: Uuid
    slug: str
    name: str
    status: str
    open_signup: bool
    created_at: str


class TenantPage(BaseModel):
    """Every tenant of the platform."""

    items: list[TenantOut]
    next_cursor: str | None = None
