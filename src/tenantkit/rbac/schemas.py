"""Request and response bodies of the per-tenant roles API."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RoleIn", "RoleName", "RoleOut", "RolePage", "RolePatchIn"]

RoleName = Annotated[str, Field(min_length=2, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]
Pattern = Annotated[str, Field(min_length=1, max_length=128)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoleIn(_Body):
    name: RoleName
    permissions: Annotated[list[Pattern], Field(max_length=500)]
    description: Annotated[str, Field(max_length=500)] = ""


class RolePatchIn(_Body):
    permissions: Annotated[list[Pattern], Field(max_length=500)] | None = None
    description: Annotated[str, Field(max_length=500)] | None = None


class RoleOut(BaseModel):
    """A role and its expanded permissions."""

    name: str
    builtin: bool
    description: str
    permissions: list[str]


class RolePage(BaseModel):
    """Built-in and custom roles of the current tenant."""

    items: list[RoleOut]
    next_cursor: str | None
