"""The SCIM resources tenantkit serves, as scim2-models resource models, and its discovery documents.

The ``User`` and ``Group`` models declare exactly what is kept, so the
``/Schemas`` endpoint (generated from them) tells a client the truth:

* ``User``: ``userName`` (the account's email, set once: a tenant's directory
  cannot rename an account other tenants share), ``displayName``,
  ``externalId``, ``active`` (always present: a member has access or not) and,
  read-only, ``emails`` (the account's address) and ``groups`` (the member's
  role). Other standard attributes a directory sends (``name``,
  ``phoneNumbers``...) are accepted and not kept.
* ``Group``: a role of the tenant; ``displayName`` is the role's name (set
  once) and ``members`` the users holding it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field
from scim2_models import (
    URN,
    AuthenticationScheme,
    Bulk,
    CaseExact,
    ChangePassword,
    ComplexAttribute,
    EnterpriseUser,
    ETag,
    Filter,
    Mutability,
    Patch,
    Reference,
    Required,
    Resource,
    ResourceType,
    Returned,
    Schema,
    ServiceProviderConfig,
    Sort,
    Uniqueness,
    User,
)

__all__ = [
    "GROUP_SCHEMA",
    "MAX_RESULTS",
    "USER_SCHEMA",
    "InputUser",
    "ScimGroup",
    "ScimGroupMember",
    "ScimUser",
    "ScimUserEmail",
    "ScimUserGroup",
    "resource_types",
    "schemas",
    "service_provider_config",
]

if TYPE_CHECKING:
    GroupReference = str
    UserReference = str
else:  # references to the served resource types, by name (RFC 7643 §2.3.7 referenceTypes)
    GroupReference = Reference["Group"]
    UserReference = Reference["User"]

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
#: What a directory may send as a user: the core schema with the enterprise extension
#: (attributes outside :class:`ScimUser` are accepted and not kept).
InputUser: Any = User[EnterpriseUser]
#: The most resources one list answer holds (``count`` is capped to it).
MAX_RESULTS = 200


class ScimUserEmail(ComplexAttribute):
    """The account's email address (read-only: it is the ``userName``)."""

    value: Annotated[str | None, Mutability.read_only] = None
    type: Annotated[str | None, Mutability.read_only] = None
    primary: Annotated[bool | None, Mutability.read_only] = None


class ScimUserGroup(ComplexAttribute):
    """The group (role) a user is in."""

    value: Annotated[str | None, Mutability.read_only, CaseExact.true] = None
    ref: Annotated[GroupReference | None, Mutability.read_only] = Field(
        None, serialization_alias="$ref", validation_alias="$ref"
    )
    display: Annotated[str | None, Mutability.read_only] = None
    type: Annotated[str | None, Mutability.read_only] = None


class ScimUser(Resource[Any]):
    """A member of the tenant as its directory sees it (``id`` is the account's id)."""

    __schema__ = URN(USER_SCHEMA)

    user_name: Annotated[str | None, Uniqueness.server, Required.true, Mutability.immutable] = None
    """The account's email address (lower-cased)."""

    display_name: str | None = None
    """The directory's name for the user, kept per tenant."""

    active: Annotated[bool | None, Required.true] = None
    """Whether the user is a member (has access); ``false`` keeps the user and their role aside."""

    emails: Annotated[list[ScimUserEmail] | None, Mutability.read_only] = None
    """The account's email address."""

    groups: Annotated[list[ScimUserGroup] | None, Mutability.read_only] = None
    """The user's role, as a group."""


class ScimGroupMember(ComplexAttribute):
    """A user holding the group's role."""

    value: Annotated[str | None, Mutability.immutable, CaseExact.true] = None
    ref: Annotated[UserReference | None, Mutability.immutable] = Field(
        None, serialization_alias="$ref", validation_alias="$ref"
    )
    type: Annotated[str | None, Mutability.immutable] = Field(None, examples=["User"])


class ScimGroup(Resource[Any]):
    """A role of the tenant (``id`` and ``displayName`` are its name)."""

    __schema__ = URN(GROUP_SCHEMA)

    external_id: Annotated[str | None, Mutability.read_only, Returned.default, CaseExact.true] = None
    """Not kept for groups (read-only, never set)."""

    display_name: Annotated[str | None, Required.true, Mutability.immutable] = None
    """The role's name."""

    members: list[ScimGroupMember] | None = None
    """The users holding the role."""


def _named(schema: Schema, name: str, description: str) -> Schema:
    schema.name = name
    schema.description = description
    return schema


def schemas() -> list[Schema]:
    """The ``/Schemas`` documents, generated from :class:`ScimUser` and :class:`ScimGroup`."""
    return [
        _named(ScimUser.to_schema(), "User", "User Account"),
        _named(ScimGroup.to_schema(), "Group", "Group (a role of the tenant)"),
    ]


def resource_types() -> list[ResourceType]:
    """The ``/ResourceTypes`` documents."""
    user = ResourceType.from_resource(ScimUser)
    user.description = "User Account"
    group = ResourceType.from_resource(ScimGroup)
    group.description = "Group (a role of the tenant)"
    return [user, group]


def service_provider_config(documentation_uri: str | None = None) -> ServiceProviderConfig:
    """What this service provider supports: PATCH and filtering; no bulk, sort, ETags or password change."""
    return ServiceProviderConfig(
        documentation_uri=documentation_uri,
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=False),
        authentication_schemes=[
            AuthenticationScheme(
                type=AuthenticationScheme.Type.oauthbearertoken,
                name="SCIM token",
                description="A tenant's SCIM token (POST /tenant/scim-tokens) as a bearer token.",
                primary=True,
            )
        ],
    )
