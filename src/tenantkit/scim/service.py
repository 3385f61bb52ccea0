"""The tenant's directory as SCIM sees it: users are members, groups are roles.

Every membership change goes through :class:`~tenantkit.tenancy.service.TenancyService`
(``add_member``, ``remove_member``, ``change_role``), so its rules hold here too:
the last ADMIN stays, a removed member's sessions end at once, the change is
audited and hooked.

* A SCIM user is a ``scim_users`` row of the tenant (the directory's
  ``externalId`` and ``displayName``, and the role to restore) plus, while
  ``active``, a membership. Deactivating removes the membership (ending its
  sessions) and keeps the row and the role; reactivating restores the
  membership with that role. Deleting removes both.
* Creating a user whose email has an account gives that account a membership
  (its password and other tenants untouched); a new email gets an account with
  an unusable password (the person signs in through SSO, or sets a password by
  reset). An existing member is adopted with the role they hold.
* A group is a role of the tenant (built-in ``USER`` and ``ADMIN``, and the
  custom roles); its members are the SCIM users holding it. Adding a user to a
  group gives them that role (a member holds one role, so they leave their
  previous group); removing them from it gives them ``USER``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from scim2_models import Meta, PatchOp, SCIMException, SearchRequest, User
from scim2_models.path import AttrPath, CompareOperator, Comparison
from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.exc import IntegrityError

from tenantkit.auth.passwords import unusable_password
from tenantkit.context import TenantRef, tenant_context
from tenantkit.db.engine import Database
from tenantkit.db.models import Membership, Role
from tenantkit.db.models import ScimUser as ScimUserRow
from tenantkit.db.models import User as Account
from tenantkit.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ProblemError,
    ValidationError,
)
from tenantkit.events import Events
from tenantkit.normalize import normalize_email
from tenantkit.rbac.roles import ADMIN, BUILTIN_ROLES, SUPER_ADMIN, USER, RoleBook
from tenantkit.scim.errors import ScimError
from tenantkit.scim.models import (
    MAX_RESULTS,
    InputUser,
    ScimGroup,
    ScimGroupMember,
    ScimUser,
    ScimUserEmail,
    ScimUserGroup,
)
from tenantkit.tenancy.service import TenancyService

__all__ = ["Page", "ScimDirectory", "acting_token"]

#: The SCIM token a request authenticated with (set by the routes): named in the audit rows.
acting_token: ContextVar[str | None] = ContextVar("tenantkit_scim_token", default=None)


def _via() -> dict[str, Any]:
    token = acting_token.get()
    return {"via": "scim", "scim_token_id": token} if token else {"via": "scim"}


#: Filters other than ``eq`` on an indexed attribute are evaluated in memory over at most this many users.
MAX_SCANNED = 5000
_ROLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{1,63}$")
#: Groups SCIM shows: the built-in roles a tenant grants (SUPER_ADMIN is the platform's).
_GROUP_BUILTINS = (USER, ADMIN)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list answer."""

    total: int
    start_index: int
    resources: Sequence[ScimUser | ScimGroup]


@dataclass(slots=True)
class _UserState:
    row: ScimUserRow
    email: str
    member_role: str | None

    @property
    def active(self) -> bool:
        return self.member_role is not None

    @property
    def role(self) -> str:
        return self.member_role if self.member_role is not None else self.row.role


def _problem(error: ProblemError) -> ScimError:
    """A tenancy refusal as a SCIM error."""
    if isinstance(error, ConflictError):
        return ScimError(409, error.detail, "mutability")
    if isinstance(error, ValidationError):
        return ScimError(400, "Unknown role.", "invalidValue")
    return ScimError(error.status, error.detail)


def _window(search: SearchRequest[Any] | None) -> tuple[int, int]:
    start = (search.start_index if search is not None else None) or 1
    count = search.count if search is not None else None
    count = MAX_RESULTS if count is None else max(0, min(count, MAX_RESULTS))
    return min(max(start, 1), 2**31), count  # beyond any table: an empty page, never an overflow


class ScimDirectory:
    """Users and groups of one tenant at a time, for the ``/scim/v2`` routes.

    Args:
        database: Where accounts, memberships, roles and ``scim_users`` live.
        tenancy: The one owner of membership changes.
        roles: Role permissions (its cache is invalidated when a group is created or deleted).
        events: Audit rows.
    """

    def __init__(
        self, *, database: Database, tenancy: TenancyService, roles: RoleBook, events: Events
    ) -> None:
        self.database = database
        self.tenancy = tenancy
        self.roles = roles
        self.events = events

    # ------------------------------------------------------------------ #
    # Reading users
    # ------------------------------------------------------------------ #

    def _user_query(self, tenant: TenantRef) -> Any:
        return (
            select(ScimUserRow, Account.email, Membership.role)
            .join(Account, Account.id == ScimUserRow.user_id)
            .outerjoin(
                Membership,
                and_(
                    Membership.tenant_id == ScimUserRow.tenant_id, Membership.user_id == ScimUserRow.user_id
                ),
            )
            .where(ScimUserRow.tenant_id == tenant.id)
        )

    async def _states(
        self, tenant: TenantRef, *where: ColumnElement[bool], offset: int = 0, limit: int | None = None
    ) -> list[_UserState]:
        query = self._user_query(tenant).where(*where).order_by(ScimUserRow.created_at, ScimUserRow.user_id)
        if offset:
            query = query.offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with tenant_context(tenant):
            async with self.database.session() as session:
                rows = (await session.execute(query)).all()
        return [_UserState(row, email, role) for row, email, role in rows]

    async def _count(self, tenant: TenantRef) -> int:
        with tenant_context(tenant):
            async with self.database.session() as session:
                total = await session.scalar(
                    select(func.count()).select_from(ScimUserRow).where(ScimUserRow.tenant_id == tenant.id)
                )
        return int(total or 0)

    async def _state(self, tenant: TenantRef, user_id: str) -> _UserState:
        try:
            uid = uuid.UUID(user_id)
        except ValueError:
            raise ScimError(404, "No such user.") from None
        found = await self._states(tenant, ScimUserRow.user_id == uid)
        if not found:
            raise ScimError(404, "No such user.")
        return found[0]

    def user_resource(self, state: _UserState, base: str) -> ScimUser:
        """The SCIM representation of a user."""
        row = state.row
        role = state.role
        return ScimUser(
            id=str(row.user_id),
            external_id=row.external_id,
            user_name=state.email,
            display_name=row.display_name,
            active=state.active,
            emails=[ScimUserEmail(value=state.email, type="work", primary=True)],
            groups=[ScimUserGroup(value=role, ref=f"{base}/Groups/{role}", display=role, type="direct")],
            meta=Meta(
                resource_type="User",
                created=row.created_at,
                last_modified=row.updated_at,
                location=f"{base}/Users/{row.user_id}",
            ),
        )

    async def get_user(self, tenant: TenantRef, user_id: str, base: str) -> ScimUser:
        """One user of the tenant (404 for anyone else, another tenant's users included)."""
        return self.user_resource(await self._state(tenant, user_id), base)

    @staticmethod
    def _fast_filter(node: Any) -> ColumnElement[bool] | None:
        """``attr eq "value"`` on an indexed attribute as SQL, else ``None``."""
        if (
            not isinstance(node, Comparison)
            or node.op != CompareOperator.eq
            or not isinstance(node.value, str)
        ):
            return None
        path: AttrPath = node.attr_path
        attr = path.attr.lower()
        sub = (path.sub_attr or "").lower()
        value: str = node.value
        if (attr == "username" and not sub) or (attr == "emails" and sub in ("", "value")):
            return Account.email == value.strip().lower()
        if attr == "externalid" and not sub:
            return ScimUserRow.external_id == value
        if attr == "id" and not sub:
            try:
                return ScimUserRow.user_id == uuid.UUID(value)
            except ValueError:
                return ScimUserRow.user_id.is_(None)
        return None

    async def list_users(self, tenant: TenantRef, search: SearchRequest[Any] | None, base: str) -> Page:
        """A page of the tenant's users matching ``search.filter``."""
        start, count = _window(search)
        scim_filter = search.filter if search is not None else None
        if scim_filter is None:
            total = await self._count(tenant)
            states = await self._states(tenant, offset=start - 1, limit=count) if count else []
            return Page(total, start, [self.user_resource(s, base) for s in states])
        fast = self._fast_filter(scim_filter.ast)
        if fast is not None:
            matched = [self.user_resource(s, base) for s in await self._states(tenant, fast)]
        else:
            states = await self._states(tenant, limit=MAX_SCANNED + 1)
            if len(states) > MAX_SCANNED:
                raise ScimError(
                    400,
                    "Filter with userName, externalId or emails.value eq on a directory this large.",
                    "tooMany",
                )
            resources = [self.user_resource(s, base) for s in states]
            matched = [r for r in resources if scim_filter.match(r)]
        return Page(len(matched), start, matched[start - 1 : start - 1 + count])

    # ------------------------------------------------------------------ #
    # Writing users
    # ------------------------------------------------------------------ #

    @staticmethod
    def user_name(value: str | None) -> str:
        """``userName`` as the account's email (lower-cased), or 400 invalidValue."""
        if not value:
            raise ScimError(400, "userName is required.", "invalidValue")
        try:
            return normalize_email(value)
        except ValueError:
            raise ScimError(400, "userName must be an email address.", "invalidValue") from None

    async def _account(self, email: str) -> uuid.UUID:
        """The id of the account with ``email``, created (unusable password) when there is none."""
        for _ in range(2):
            async with self.database.session() as session:
                found = await session.scalar(select(Account.id).where(Account.email == email))
            if found is not None:
                return found
            try:
                async with self.database.session() as session, session.begin():
                    account = Account(email=email, password_hash=unusable_password())
                    session.add(account)
                    await session.flush()
                    created: uuid.UUID = account.id
            except IntegrityError:  # created concurrently: read it again
                continue
            self.events.audit("user.created", tenant_id=None, target=str(created), data=_via())
            return created
        raise ScimError(409, "The account is being created concurrently; retry.", "uniqueness")

    async def create_user(self, tenant: TenantRef, data: User[Any], base: str) -> ScimUser:
        """Provision a user: 409 uniqueness when this tenant's directory already has them."""
        email = self.user_name(data.user_name)
        user_id = await self._account(email)
        active = data.active is not False
        with tenant_context(tenant):
            async with self.database.session() as session:
                existing_role = await session.scalar(
                    select(Membership.role).where(
                        Membership.tenant_id == tenant.id, Membership.user_id == user_id
                    )
                )
            try:
                async with self.database.session() as session, session.begin():
                    session.add(
                        ScimUserRow(
                            tenant_id=tenant.id,
                            user_id=user_id,
                            external_id=data.external_id,
                            display_name=data.display_name,
                            active=active,
                            role=existing_role or USER,
                        )
                    )
            except IntegrityError:
                raise ScimError(
                    409, "This userName is already provisioned in this tenant.", "uniqueness"
                ) from None
        self.events.audit("scim.user_provisioned", tenant_id=tenant.id, target=str(user_id), data=_via())
        state = (await self._states(tenant, ScimUserRow.user_id == user_id))[0]
        await self._set_active(tenant, state, active)
        return await self.get_user(tenant, str(user_id), base)

    async def _set_active(self, tenant: TenantRef, state: _UserState, active: bool) -> None:
        """Make the membership match ``active`` (through the tenancy service)."""
        user_id = state.row.user_id
        try:
            if active and state.member_role is None:
                role = await self._restorable(tenant, state.row.role)
                await self.tenancy.add_member(tenant, user_id, role, via="scim")
            elif not active and state.member_role is not None:
                await self._keep_role(tenant, user_id, state.member_role)
                await self.tenancy.remove_member(tenant, user_id, actor_id=None)
        except ProblemError as error:
            raise _problem(error) from None
        await self._update_row(tenant, user_id, active=active)
        if state.active != active:
            action = "scim.user_reactivated" if active else "scim.user_deactivated"
            self.events.audit(action, tenant_id=tenant.id, target=str(user_id), data=_via())

    async def _restorable(self, tenant: TenantRef, role: str) -> str:
        """``role`` if it still exists in the tenant, else USER."""
        if role == SUPER_ADMIN:
            return USER
        if role in BUILTIN_ROLES:
            return role
        with tenant_context(tenant):
            async with self.database.session() as session:
                found = await session.get(Role, (tenant.id, role))
        return role if found is not None else USER

    async def _keep_role(self, tenant: TenantRef, user_id: uuid.UUID, role: str) -> None:
        await self._update_row(tenant, user_id, role=role)

    async def _update_row(self, tenant: TenantRef, user_id: uuid.UUID, **values: Any) -> None:
        with tenant_context(tenant):
            async with self.database.session() as session, session.begin():
                row = await session.get(ScimUserRow, (tenant.id, user_id))
                if row is None:
                    raise ScimError(404, "No such user.")
                for name, value in values.items():
                    setattr(row, name, value)

    def _as_user(self, state: _UserState) -> User[Any]:
        return InputUser(  # type: ignore[no-any-return]
            id=str(state.row.user_id),
            user_name=state.email,
            display_name=state.row.display_name,
            external_id=state.row.external_id,
            active=state.active,
            # So that directories' paths such as emails[type eq "work"].value resolve (not kept).
            emails=[{"value": state.email, "type": "work", "primary": True}],
        )

    async def _apply(self, tenant: TenantRef, state: _UserState, wanted: User[Any], base: str) -> ScimUser:
        if wanted.user_name is not None and self.user_name(wanted.user_name) != state.email:
            raise ScimError(400, "userName cannot change: it is the account's email.", "mutability")
        active = wanted.active is not False
        # The membership first: a refusal (the last ADMIN) leaves the user as it was.
        await self._set_active(tenant, state, active)
        await self._update_row(
            tenant, state.row.user_id, display_name=wanted.display_name, external_id=wanted.external_id
        )
        return await self.get_user(tenant, str(state.row.user_id), base)

    async def replace_user(self, tenant: TenantRef, user_id: str, data: User[Any], base: str) -> ScimUser:
        """PUT: ``displayName``, ``externalId`` and ``active`` as given (absent: none, and active)."""
        state = await self._state(tenant, user_id)
        if data.user_name is None:
            raise ScimError(400, "userName is required.", "invalidValue")
        return await self._apply(tenant, state, data, base)

    async def patch_user(
        self, tenant: TenantRef, user_id: str, patch: PatchOp[User[Any]], base: str
    ) -> ScimUser:
        """PATCH: the operations applied to the current state, then kept (atomic per request)."""
        state = await self._state(tenant, user_id)
        current = self._as_user(state)
        try:
            patch.patch(current)
        except (SCIMException, ValueError) as error:  # ValueError: pydantic's ValidationError
            raise _patch_error(error) from None
        if current.active is None:
            raise ScimError(400, "active cannot be removed; set it to false to deprovision.", "invalidValue")
        return await self._apply(tenant, state, current, base)

    async def delete_user(self, tenant: TenantRef, user_id: str) -> None:
        """Deprovision: the membership (its sessions end at once) and the SCIM record go."""
        state = await self._state(tenant, user_id)
        uid = state.row.user_id
        if state.member_role is not None:
            try:
                await self.tenancy.remove_member(tenant, uid, actor_id=None)
            except NotFoundError:
                pass
            except ProblemError as error:
                raise _problem(error) from None
        with tenant_context(tenant):
            async with self.database.session() as session, session.begin():
                row = await session.get(ScimUserRow, (tenant.id, uid))
                if row is not None:
                    await session.delete(row)
        self.events.audit("scim.user_deprovisioned", tenant_id=tenant.id, target=str(uid), data=_via())

    # ------------------------------------------------------------------ #
    # Groups (roles)
    # ------------------------------------------------------------------ #

    async def _role_names(self, tenant: TenantRef) -> list[str]:
        with tenant_context(tenant):
            async with self.database.session() as session:
                custom = (
                    await session.scalars(
                        select(Role.name).where(Role.tenant_id == tenant.id).order_by(Role.name)
                    )
                ).all()
        return [*_GROUP_BUILTINS, *custom]

    async def _group_exists(self, tenant: TenantRef, name: str) -> bool:
        if name in _GROUP_BUILTINS:
            return True
        if name in BUILTIN_ROLES:
            return False
        with tenant_context(tenant):
            async with self.database.session() as session:
                return await session.get(Role, (tenant.id, name)) is not None

    async def _holders(self, tenant: TenantRef) -> dict[str, list[uuid.UUID]]:
        holders: dict[str, list[uuid.UUID]] = {}
        for state in await self._states(tenant):
            holders.setdefault(state.role, []).append(state.row.user_id)
        return holders

    @staticmethod
    def group_resource(name: str, members: Sequence[uuid.UUID], base: str) -> ScimGroup:
        """The SCIM representation of a role."""
        return ScimGroup(
            id=name,
            display_name=name,
            members=[ScimGroupMember(value=str(m), ref=f"{base}/Users/{m}", type="User") for m in members]
            or None,
            meta=Meta(resource_type="Group", location=f"{base}/Groups/{name}"),
        )

    async def get_group(self, tenant: TenantRef, name: str, base: str) -> ScimGroup:
        """One role of the tenant as a group (404 for an unknown name)."""
        if not await self._group_exists(tenant, name):
            raise ScimError(404, "No such group.")
        return self.group_resource(name, (await self._holders(tenant)).get(name, []), base)

    async def list_groups(self, tenant: TenantRef, search: SearchRequest[Any] | None, base: str) -> Page:
        """A page of the tenant's roles as groups, matching ``search.filter``."""
        start, count = _window(search)
        holders = await self._holders(tenant)
        groups = [self.group_resource(n, holders.get(n, []), base) for n in await self._role_names(tenant)]
        scim_filter = search.filter if search is not None else None
        if scim_filter is not None:
            groups = [g for g in groups if scim_filter.match(g)]
        return Page(len(groups), start, groups[start - 1 : start - 1 + count])

    async def create_group(self, tenant: TenantRef, data: ScimGroup, base: str) -> ScimGroup:
        """POST: a custom role with no permissions (a tenant admin grants them on ``/roles``)."""
        name = data.display_name or ""
        if not _ROLE_NAME.fullmatch(name):
            raise ScimError(
                400,
                "displayName must be a role name: a letter, then letters, digits, _ or - (2-64).",
                "invalidValue",
            )
        if name.upper() in BUILTIN_ROLES:
            raise ScimError(409, "A built-in role has this name.", "uniqueness")
        try:
            with tenant_context(tenant):
                async with self.database.session() as session, session.begin():
                    session.add(
                        Role(tenant_id=tenant.id, name=name, permissions=[], description="Created by SCIM")
                    )
        except IntegrityError:
            raise ScimError(409, "A group with this displayName exists.", "uniqueness") from None
        await self.roles.role_changed(tenant.id, name)
        self.events.audit("role.created", tenant_id=tenant.id, target=name, data=_via())
        if data.members:
            await self._set_members(tenant, name, [m.value for m in data.members], base)
        return await self.get_group(tenant, name, base)

    async def replace_group(self, tenant: TenantRef, name: str, data: ScimGroup, base: str) -> ScimGroup:
        """PUT: ``members`` become exactly the given users (``displayName`` cannot change)."""
        if not await self._group_exists(tenant, name):
            raise ScimError(404, "No such group.")
        if data.display_name is not None and data.display_name != name:
            raise ScimError(400, "displayName cannot change: it is the role's name.", "mutability")
        await self._set_members(tenant, name, [m.value for m in data.members or []], base)
        return await self.get_group(tenant, name, base)

    async def patch_group(
        self, tenant: TenantRef, name: str, patch: PatchOp[ScimGroup], base: str
    ) -> ScimGroup:
        """PATCH: add/remove/replace ``members`` (``displayName`` cannot change)."""
        current = await self.get_group(tenant, name, base)
        try:
            patch.patch(current)
        except (SCIMException, ValueError) as error:
            raise _patch_error(error) from None
        if current.display_name != name:
            raise ScimError(400, "displayName cannot change: it is the role's name.", "mutability")
        await self._set_members(tenant, name, [m.value for m in current.members or []], base)
        return await self.get_group(tenant, name, base)

    async def delete_group(self, tenant: TenantRef, name: str) -> None:
        """DELETE: a custom role nobody holds (403 for a built-in role, 409 while members hold it)."""
        if name in BUILTIN_ROLES:
            raise ScimError(403, "Built-in roles cannot be deleted.")
        if not await self._group_exists(tenant, name):
            raise ScimError(404, "No such group.")
        with tenant_context(tenant):
            async with self.database.session() as session, session.begin():
                held = await session.scalar(
                    select(func.count()).where(Membership.tenant_id == tenant.id, Membership.role == name)
                )
                if held:
                    raise ScimError(409, "Members still hold this role; move them to another group first.")
                kept = await session.scalars(
                    select(ScimUserRow).where(ScimUserRow.tenant_id == tenant.id, ScimUserRow.role == name)
                )
                for row in kept.all():  # deactivated users come back as USER
                    row.role = USER
                role = await session.get(Role, (tenant.id, name))
                if role is not None:
                    await session.delete(role)
        await self.roles.role_changed(tenant.id, name)
        self.events.audit("role.deleted", tenant_id=tenant.id, target=name, data=_via())

    async def _set_members(
        self, tenant: TenantRef, name: str, wanted: Sequence[str | None], base: str
    ) -> None:
        """Make the SCIM users holding ``name`` exactly ``wanted`` (user ids)."""
        states = {s.row.user_id: s for s in await self._states(tenant)}
        target: set[uuid.UUID] = set()
        for value in wanted:
            try:
                uid = uuid.UUID(str(value))
            except ValueError:
                raise ScimError(400, "A member is not a user of this tenant.", "invalidValue") from None
            if uid not in states:
                raise ScimError(400, "A member is not a user of this tenant.", "invalidValue")
            target.add(uid)
        current = {uid for uid, s in states.items() if s.role == name}
        for uid in target - current:
            await self._assign(tenant, states[uid], name)
        for uid in current - target:
            await self._assign(tenant, states[uid], USER)

    async def _assign(self, tenant: TenantRef, state: _UserState, role: str) -> None:
        user_id = state.row.user_id
        if state.member_role is None:  # deactivated: the role to restore changes
            await self._keep_role(tenant, user_id, role)
            return
        try:
            await self.tenancy.change_role(tenant, user_id, role, actor_id=None, actor_permissions=None)
        except PermissionDeniedError as error:
            raise ScimError(403, error.detail) from None
        except ProblemError as error:
            raise _problem(error) from None
        await self._keep_role(tenant, user_id, role)


def _patch_error(error: Exception) -> ScimError:
    from pydantic import ValidationError as PydanticError
    from scim2_models import Error

    if isinstance(error, SCIMException):
        found = error.to_error()
    elif isinstance(error, PydanticError):
        errors = Error.from_validation_errors(error)
        found = errors[0] if errors else Error(status=400, scim_type="invalidValue", detail="Invalid PATCH.")
    else:
        found = Error(status=400, scim_type="invalidValue", detail="Invalid PATCH.")
    return ScimError(int(found.status or 400), found.detail or "Invalid PATCH.", found.scim_type)
