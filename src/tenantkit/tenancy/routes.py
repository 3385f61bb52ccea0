"""The members and invitations API of the current tenant (``/users``...).

Plain handlers of :class:`MemberRoutes`, which holds its collaborators; every
rule (grants, the last ADMIN, what dies with an inviter) lives in
:class:`~tenantkit.tenancy.service.TenancyService`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tenantkit.http import NO_STORE, json_response, parse_body, path_uuid
from tenantkit.openapi import describe
from tenantkit.rbac.decorators import current_permissions, requires_permissions
from tenantkit.tenancy.schemas import (
    InvitationIn,
    InvitationOut,
    MemberOut,
    MemberPage,
    PendingInvitationOut,
    PendingInvitationPage,
    RoleChangeIn,
    RoleChangeOut,
    iso,
)
from tenantkit.tenancy.service import TenancyService

__all__ = ["MemberRoutes"]


class MemberRoutes:
    """``GET /users``, invitations, role changes and removals.

    Args:
        tenancy: The owner of every membership rule.
        max_json_depth: Deepest JSON body accepted.
    """

    def __init__(self, tenancy: TenancyService, *, max_json_depth: int = 32) -> None:
        self.tenancy = tenancy
        self.depth = max_json_depth

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/users", self.list_members, methods=["GET"], name="users:list"),
            Route("/users/invitations", self.invite, methods=["POST"], name="users:invite"),
            Route("/users/invitations", self.list_invitations, methods=["GET"], name="users:invitations"),
            Route(
                "/users/invitations/{invitation_id}",
                self.revoke_invitation,
                methods=["DELETE"],
                name="users:revoke-invitation",
            ),
            Route("/users/{user_id:uuid}/role", self.change_role, methods=["PATCH"], name="users:role"),
            Route("/users/{user_id:uuid}", self.remove_member, methods=["DELETE"], name="users:remove"),
        ]

    @describe(summary="Members of the current tenant", response=MemberPage, tags=["users"])
    @requires_permissions("users.read")
    async def list_members(self, request: Request) -> Response:
        _, tenant, _, _ = await current_permissions(request)
        members = await self.tenancy.list_members(tenant)
        items = [
            MemberOut(id=str(m.user_id), email=m.email, role=m.role, joined_at=iso(m.joined_at))
            for m in members
        ]
        return json_response(MemberPage(items=items))

    @describe(
        summary="Invite someone (the token is also emailed)",
        body=InvitationIn,
        response=InvitationOut,
        status=201,
        responses={403: "The role grants permissions you do not hold."},
        tags=["users"],
    )
    @requires_permissions("users.invite")
    async def invite(self, request: Request) -> Response:
        principal, tenant, _, granted = await current_permissions(request)
        body = await parse_body(request, InvitationIn, max_depth=self.depth)
        invitation, token = await self.tenancy.invite(
            tenant,
            email=body.email,
            role=body.role,
            inviter_id=principal.user_id,
            inviter_permissions=granted,
        )
        out = InvitationOut(
            id=str(invitation.id),
            email=invitation.email,
            role=invitation.role,
            expires_at=iso(invitation.expires_at),
            invite_token=token,
        )
        return json_response(out, 201, headers=NO_STORE)

    @describe(
        summary="Pending invitations of the current tenant (never their tokens)",
        response=PendingInvitationPage,
        tags=["users"],
    )
    @requires_permissions("users.invite")
    async def list_invitations(self, request: Request) -> Response:
        _, tenant, _, _ = await current_permissions(request)
        rows = await self.tenancy.list_invitations(tenant)
        items = [
            PendingInvitationOut(
                id=str(row.id),
                email=row.email,
                role=row.role,
                invited_by=str(row.invited_by) if row.invited_by else None,
                created_at=iso(row.created_at),
                expires_at=iso(row.expires_at),
            )
            for row in rows
        ]
        return json_response(PendingInvitationPage(items=items))

    @describe(
        summary="Revoke a pending invitation (its token stops working at once)",
        status=204,
        responses={404: "No such pending invitation."},
        tags=["users"],
    )
    @requires_permissions("users.invite")
    async def revoke_invitation(self, request: Request) -> Response:
        principal, tenant, _, _ = await current_permissions(request)
        invitation_id = path_uuid(request, "invitation_id", missing="No such pending invitation.")
        await self.tenancy.revoke_invitation(tenant, invitation_id, actor_id=principal.user_id)
        return Response(status_code=204)

    @describe(
        summary="Change a member's role",
        body=RoleChangeIn,
        response=RoleChangeOut,
        responses={404: "No such member.", 409: "The tenant's last ADMIN."},
        tags=["users"],
    )
    @requires_permissions("users.update")
    async def change_role(self, request: Request) -> Response:
        principal, tenant, _, granted = await current_permissions(request)
        user_id = path_uuid(request, "user_id", missing="No such member.")
        body = await parse_body(request, RoleChangeIn, max_depth=self.depth)
        role = await self.tenancy.change_role(
            tenant, user_id, body.role, actor_id=principal.user_id, actor_permissions=granted
        )
        return json_response(RoleChangeOut(id=str(user_id), role=role))

    @describe(
        summary="Remove a member (their sessions in this tenant end)",
        status=204,
        responses={404: "No such member.", 409: "The tenant's last ADMIN."},
        tags=["users"],
    )
    @requires_permissions("users.delete")
    async def remove_member(self, request: Request) -> Response:
        principal, tenant, _, granted = await current_permissions(request)
        user_id = path_uuid(request, "user_id", missing="No such member.")
        await self.tenancy.remove_member(
            tenant, user_id, actor_id=principal.user_id, actor_permissions=granted
        )
        return Response(status_code=204)
