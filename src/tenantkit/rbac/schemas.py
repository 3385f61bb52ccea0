"""Request bodies of the administration routes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from tenantkit.normalize import Email

__all__ = ["InvitationIn", "RoleChangeIn", "RoleIn", "RolePatchIn", "TenantPatchIn"]

RoleName = Annotated[str, Field(min_length=2, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]
Pattern = Annotated[str, Field(min_length=1, max_length=128)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InvitationIn(_Body):
    email: Email
    role: RoleName = "USER"


class RoleChangeIn(_Body):
    role: RoleName


class RoleIn(_Body):
    name: RoleName
    permissions: Annotated[list[Pattern], Field(max_length=500)]
    description: Annotated[str, Field(max_length=500)] = ""


class RolePatchIn(_Body):
    permissions: Annotated[list[Pattern], Field(max_length=500)] | None = None
    description: Annotated[str, Field(max_length=500)] | None = None


class TenantPatchIn(_Body):
    status: Literal["active", "suspended"] | None = None
    open_signup: bool | None = None
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
