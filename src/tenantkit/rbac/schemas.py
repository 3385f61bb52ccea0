"""Request and response bodies of the per-tenant roles API."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tenantkit.http import absent_not_null
from tenantkit.normalize import StorableText
from tenantkit.rbac.registry import PERMISSION_PATTERN

__all__ = ["RoleIn", "RoleName", "RoleOut", "RolePage", "RolePatchIn", "role_bodies"]

RoleName = Annotated[str, Field(min_length=2, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]
Pattern = Annotated[str, Field(min_length=1, max_length=128, pattern=PERMISSION_PATTERN)]
Description = Annotated[str, Field(max_length=500), StorableText()]
Permissions = Annotated[list[Pattern], Field(max_length=500)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoleIn(_Body):
    """``POST /roles``: a custom role and the permission codes (or wildcards) it grants."""

    name: RoleName
    permissions: Permissions
    description: Description = ""


class RolePatchIn(_Body):
    """``PATCH /roles/{name}``: any subset of the fields; a field may be left out, never ``null``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=absent_not_null)

    permissions: Permissions | None = None
    description: Description | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value


def role_bodies(grantable: Callable[[], Iterable[str]]) -> tuple[type[RoleIn], type[RolePatchIn]]:
    """``RoleIn`` and ``RolePatchIn`` whose documented ``permissions`` are an enum of ``grantable()``.

    A well-formed code no registry knows is a 422, so the document lists the
    codes and wildcards a role may name (read when the document is built, after
    every permission is registered) instead of the bare pattern. Validation is
    the base models'; these subclasses only document.
    """

    def enum(schema: dict[str, Any]) -> None:
        prop = schema.get("properties", {}).get("permissions", {})
        for option in [prop, *prop.get("anyOf", ())]:
            if option.get("type") == "array":
                option["items"] = {"type": "string", "enum": sorted(grantable())}

    def patch_enum(schema: dict[str, Any]) -> None:
        absent_not_null(schema)
        enum(schema)

    create = type(
        "RoleIn", (RoleIn,), {"__doc__": RoleIn.__doc__, "model_config": ConfigDict(json_schema_extra=enum)}
    )
    patch = type(
        "RolePatchIn",
        (RolePatchIn,),
        {"__doc__": RolePatchIn.__doc__, "model_config": ConfigDict(json_schema_extra=patch_enum)},
    )
    return create, patch


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
