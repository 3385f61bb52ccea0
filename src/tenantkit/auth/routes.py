"""The ``/auth`` router and ``/.well-known/jwks.json``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tenantkit.auth.schemas import (
    AcceptInvitationIn,
    LoginIn,
    PasswordChangeIn,
    PasswordResetConfirmIn,
    PasswordResetIn,
    RefreshIn,
    RegisterIn,
    SwitchTenantIn,
)
from tenantkit.auth.service import TokenPair
from tenantkit.errors import InvalidTokenError, NotFoundError, PermissionDeniedError, TenantNotFoundError
from tenantkit.http import parse_body, path_uuid
from tenantkit.openapi import describe
from tenantkit.openapi.schemas import (
    AcceptedOut,
    JWKSOut,
    MembershipOut,
    MeOut,
    RegisterOut,
    SessionPage,
    TokenPairOut,
)
from tenantkit.rbac.decorators import current_permissions, request_principal, request_tenant, requires_auth
from tenantkit.security.ratelimit import account_subject, rate_key

if TYPE_CHECKING:
    from tenantkit.kit import TenantKit

__all__ = ["auth_routes"]

COOKIE = "refresh_token"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _tenant_json(tenant: Any) -> dict[str, Any]:
    return {"id": str(tenant.id), "slug": tenant.slug, "name": tenant.name}


def auth_routes(kit: TenantKit, prefix: str = "/auth") -> list[BaseRoute]:
    """Routes of the auth API (mount them as they are, or under another prefix)."""
    service = kit.auth
    settings = kit.settings
    secure = not settings.is_development
    depth = settings.max_json_depth

    def client(request: Request) -> tuple[str | None, str]:
        return request.state.client_ip, request.headers.get("user-agent", "")

    def pair_response(pair: TokenPair, status: int = 200) -> Response:
        response = JSONResponse(pair.as_dict(), status, headers=NO_STORE)
        response.set_cookie(
            COOKIE,
            pair.refresh_token,
            max_age=settings.refresh_token_ttl,
            path=prefix,
            httponly=True,
            samesite="strict",
            secure=secure,
        )
        return response

    def clear_cookie(response: Response) -> Response:
        response.delete_cookie(COOKIE, path=prefix, httponly=True, samesite="strict", secure=secure)
        return response

    def check_origin(request: Request) -> None:
        origin = request.headers.get("origin")
        if origin is None:
            return
        host = request.headers.get("host", "")
        if urlsplit(origin).netloc == host or origin in settings.csrf_trusted_origins:
            return
        raise PermissionDeniedError("Cross-site refresh refused.")

    @describe(
        summary="Register (new tenant, open sign-up or invitation)",
        body=RegisterIn,
        response=RegisterOut,
        status=201,
        responses={
            403: "Sign-up closed, tenant suspended, or invitation for another email.",
            404: "Unknown tenant or invitation.",
            409: "The email is taken.",
        },
        tags=["auth"],
        public=True,
    )
    async def register(request: Request) -> Response:
        body = await parse_body(request, RegisterIn, max_depth=depth)
        named = body.invite_token is None or bool(request.headers.get(settings.tenant_header))
        tenant = request_tenant(request) if body.tenant_name is None and named else None
        user, ref, role = await service.register(
            email=body.email,
            password=body.password,
            tenant_name=body.tenant_name,
            tenant=tenant,
            invite_token=body.invite_token,
        )
        return JSONResponse(
            {"user": {"id": str(user.id), "email": user.email}, "tenant": _tenant_json(ref), "role": role},
            201,
        )

    async def per_account(email: str, name: str) -> None:
        key = rate_key("account", account_subject(email), name)
        await kit.rate_limiter.check(key, settings.rate_limit_auth, policy="auth-account")

    @describe(
        summary="Sign in: an access token and a rotating refresh token",
        body=LoginIn,
        response=TokenPairOut,
        responses={
            401: "Wrong email or password.",
            403: "Not a member of the named tenant.",
            404: "Unknown tenant.",
            423: "Locked after repeated failures.",
        },
        tags=["auth"],
        public=True,
    )
    async def login(request: Request) -> Response:
        body = await parse_body(request, LoginIn, max_depth=depth)
        await per_account(body.email, "login")
        tenant = request_tenant(request) if request.headers.get(settings.tenant_header) else None
        ip, agent = client(request)
        pair = await service.login(
            email=body.email, password=body.password, tenant=tenant, ip=ip, user_agent=agent
        )
        return pair_response(pair)

    @describe(
        summary="Rotate the refresh token (body or refresh_token cookie)",
        body=RefreshIn,
        response=TokenPairOut,
        responses={
            401: "Expired, unknown, revoked or reused refresh token.",
            403: "Cross-site cookie refresh.",
        },
        tags=["auth"],
        public=True,
    )
    async def refresh(request: Request) -> Response:
        token = None
        if int(request.headers.get("content-length") or 0) > 0 or "content-type" in request.headers:
            token = (await parse_body(request, RefreshIn, max_depth=depth)).refresh_token
        if token is None:
            token = request.cookies.get(COOKIE)
            if token is not None:
                check_origin(request)
        if not token:
            raise InvalidTokenError("Send the refresh token in the body or the refresh_token cookie.")
        pair = await service.refresh(token, ip=request.state.client_ip)
        return pair_response(pair)

    @describe(summary="Sign out this session", status=204, tags=["auth"])
    @requires_auth()
    async def logout(request: Request) -> Response:
        await service.logout(request_principal(request))
        return clear_cookie(Response(status_code=204))

    @describe(summary="Sign out every session", status=204, tags=["auth"])
    @requires_auth()
    async def logout_all(request: Request) -> Response:
        await service.logout_all(request_principal(request).user_id)
        return clear_cookie(Response(status_code=204))

    @describe(summary="The caller in the current tenant", response=MeOut, tags=["auth"])
    @requires_auth()
    async def me(request: Request) -> Response:
        principal, tenant, role, permissions = await current_permissions(request)
        email = await kit.user_email(principal.user_id)
        return JSONResponse(
            {
                "id": str(principal.user_id),
                "email": email,
                "tenant": _tenant_json(tenant),
                "role": role,
                "permissions": sorted(permissions),
            },
            headers=NO_STORE,
        )

    @describe(summary="The caller's sessions (devices)", response=SessionPage, tags=["auth"])
    @requires_auth()
    async def sessions(request: Request) -> Response:
        principal = request_principal(request)
        rows = await service.list_sessions(principal.user_id)
        return JSONResponse(
            {
                "items": [
                    {
                        "id": str(s.id),
                        "user_agent": s.user_agent,
                        "ip": s.ip,
                        "tenant_id": str(s.tenant_id),
                        "created_at": s.created_at.isoformat(),
                        "last_used_at": s.last_used_at.isoformat(),
                        "current": s.id == principal.session_id,
                    }
                    for s in rows
                ],
                "next_cursor": None,
            },
            headers=NO_STORE,
        )

    @describe(
        summary="Sign a device out",
        status=204,
        responses={404: "Not one of the caller's sessions."},
        tags=["auth"],
    )
    @requires_auth()
    async def revoke_session(request: Request) -> Response:
        principal = request_principal(request)
        session_id = path_uuid(request, "session_id", missing="No such session.")
        await service.revoke_session(principal.user_id, session_id)
        response = Response(status_code=204)
        return clear_cookie(response) if session_id == principal.session_id else response

    @describe(
        summary="A new token pair bound to another membership",
        body=SwitchTenantIn,
        response=TokenPairOut,
        responses={403: "Not a member of that tenant.", 404: "Unknown tenant."},
        tags=["auth"],
    )
    @requires_auth()
    async def switch_tenant(request: Request) -> Response:
        principal = request_principal(request)
        body = await parse_body(request, SwitchTenantIn, max_depth=depth)
        tenant = await kit.directory.find(body.tenant)
        if tenant is None:
            raise TenantNotFoundError("Unknown tenant.")
        ip, agent = client(request)
        return pair_response(await service.switch_tenant(principal, tenant, ip=ip, user_agent=agent))

    @describe(
        summary="Join the inviting tenant",
        body=AcceptInvitationIn,
        response=MembershipOut,
        responses={
            403: "Invitation issued to another email.",
            404: "Unknown, expired or used invitation.",
            409: "Already a member.",
        },
        tags=["auth"],
    )
    @requires_auth()
    async def accept_invitation(request: Request) -> Response:
        principal = request_principal(request)
        body = await parse_body(request, AcceptInvitationIn, max_depth=depth)
        tenant, role = await service.accept_invitation(principal.user_id, body.invite_token)
        return JSONResponse(
            {"tenant": _tenant_json(tenant), "user_id": str(principal.user_id), "role": role}, 200
        )

    @describe(
        summary="Change the password (other sessions end)",
        body=PasswordChangeIn,
        status=204,
        responses={401: "Wrong current password."},
        tags=["auth"],
    )
    @requires_auth()
    async def change_password(request: Request) -> Response:
        body = await parse_body(request, PasswordChangeIn, max_depth=depth)
        await service.change_password(request_principal(request), body.current_password, body.new_password)
        return Response(status_code=204)

    @describe(
        summary="Email a password-reset token",
        body=PasswordResetIn,
        response=AcceptedOut,
        status=202,
        tags=["auth"],
        public=True,
    )
    async def password_reset(request: Request) -> Response:
        body = await parse_body(request, PasswordResetIn, max_depth=depth)
        await per_account(body.email, "password-reset")
        kit.spawn(service.request_password_reset(body.email))
        return JSONResponse({"detail": "If the account exists, a reset message is on its way."}, 202)

    @describe(
        summary="Set a new password with the emailed token",
        body=PasswordResetConfirmIn,
        status=204,
        responses={400: "Invalid or expired token."},
        tags=["auth"],
        public=True,
    )
    async def password_reset_confirm(request: Request) -> Response:
        body = await parse_body(request, PasswordResetConfirmIn, max_depth=depth)
        await service.confirm_password_reset(body.token, body.new_password)
        return Response(status_code=204)

    @describe(
        summary="Public keys verifying access tokens",
        response=JWKSOut,
        responses={404: "Tokens are signed with a shared secret (HS256)."},
        tags=["keys"],
        public=True,
    )
    async def jwks(request: Request) -> Response:
        document = kit.keys.jwks()
        if document is None:
            raise NotFoundError("No public keys: tokens are signed with a shared secret.")
        return JSONResponse(document, headers={"Cache-Control": "public, max-age=300"})

    p = prefix
    return [
        Route(f"{p}/register", register, methods=["POST"], name="auth:register"),
        Route(f"{p}/login", login, methods=["POST"], name="auth:login"),
        Route(f"{p}/refresh", refresh, methods=["POST"], name="auth:refresh"),
        Route(f"{p}/logout", logout, methods=["POST"], name="auth:logout"),
        Route(f"{p}/logout-all", logout_all, methods=["POST"], name="auth:logout-all"),
        Route(f"{p}/me", me, methods=["GET"], name="auth:me"),
        Route(f"{p}/sessions", sessions, methods=["GET"], name="auth:sessions"),
        Route(f"{p}/sessions/{{session_id}}", revoke_session, methods=["DELETE"], name="auth:revoke-session"),
        Route(f"{p}/switch-tenant", switch_tenant, methods=["POST"], name="auth:switch-tenant"),
        Route(f"{p}/invitations/accept", accept_invitation, methods=["POST"], name="auth:accept-invitation"),
        Route(f"{p}/password", change_password, methods=["POST"], name="auth:password"),
        Route(f"{p}/password-reset", password_reset, methods=["POST"], name="auth:password-reset"),
        Route(
            f"{p}/password-reset/confirm",
            password_reset_confirm,
            methods=["POST"],
            name="auth:password-reset-confirm",
        ),
        Route("/.well-known/jwks.json", jwks, methods=["GET"], name="jwks"),
    ]
