"""The ``/auth`` router and ``/.well-known/jwks.json``: plain handlers over accounts and sessions."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tenantkit.auth.accounts import Accounts
from tenantkit.auth.keys import KeySet
from tenantkit.auth.mfa import Challenge
from tenantkit.auth.schemas import (
    AcceptInvitationIn,
    LoginIn,
    LoginOut,
    PasswordChangeIn,
    PasswordResetConfirmIn,
    PasswordResetIn,
    RefreshIn,
    RegisterIn,
    SwitchTenantIn,
    WhoAmIOut,
)
from tenantkit.auth.sessions import Sessions
from tenantkit.auth.tokens import TokenPair
from tenantkit.background import Background
from tenantkit.errors import InvalidTokenError, NotFoundError, PermissionDeniedError, TenantNotFoundError
from tenantkit.http import NO_STORE, parse_body, path_uuid
from tenantkit.http import ORJSONResponse as JSONResponse
from tenantkit.openapi import describe
from tenantkit.openapi.schemas import (
    AcceptedOut,
    JWKSOut,
    MembershipOut,
    MyTenantPage,
    RegisterOut,
    SessionPage,
    TokenPairOut,
)
from tenantkit.rbac.decorators import current_permissions, request_principal, request_tenant, requires_auth
from tenantkit.security.ratelimit import RateLimiter, account_subject, rate_key
from tenantkit.settings import Settings
from tenantkit.tenancy.directory import TenantDirectory
from tenantkit.tenancy.service import TenancyService

__all__ = ["COOKIE", "AuthRoutes"]

COOKIE = "refresh_token"


def _tenant_json(tenant: Any) -> dict[str, Any]:
    return {"id": str(tenant.id), "slug": tenant.slug, "name": tenant.name}


def _client(request: Request) -> tuple[str | None, str]:
    return request.state.client_ip, request.headers.get("user-agent", "")


class AuthRoutes:
    """The auth API. Mount :meth:`routes` as they are, or under another ``prefix``.

    Args:
        settings: Cookie, CSRF and rate-limit settings.
        accounts: Registration and passwords.
        sessions: Sign-in, rotation, sign-out, devices.
        tenancy: Accepts invitations.
        directory: Finds the tenant of a switch.
        keys: Publishes the JWKS.
        rate_limiter: Per-account limits on sign-in and reset.
        background: Runs password-reset mail after the answer.
        prefix: Where the routes live (``/auth``; also the refresh cookie's path).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        accounts: Accounts,
        sessions: Sessions,
        tenancy: TenancyService,
        directory: TenantDirectory,
        keys: KeySet,
        rate_limiter: RateLimiter,
        background: Background,
        prefix: str = "/auth",
    ) -> None:
        self.settings = settings
        self.accounts = accounts
        self.sessions = sessions
        self.tenancy = tenancy
        self.directory = directory
        self.keys = keys
        self.rate_limiter = rate_limiter
        self.background = background
        self.prefix = prefix
        self.secure = not settings.is_development
        self.depth = settings.max_json_depth

    def routes(self) -> list[BaseRoute]:
        """The routes, named ``auth:<action>``."""
        p = self.prefix
        return [
            Route(f"{p}/register", self.register, methods=["POST"], name="auth:register"),
            Route(f"{p}/login", self.login, methods=["POST"], name="auth:login"),
            Route(f"{p}/refresh", self.refresh, methods=["POST"], name="auth:refresh"),
            Route(f"{p}/logout", self.logout, methods=["POST"], name="auth:logout"),
            Route(f"{p}/logout-all", self.logout_all, methods=["POST"], name="auth:logout-all"),
            Route(f"{p}/me", self.me, methods=["GET"], name="auth:me"),
            Route(f"{p}/sessions", self.list_sessions, methods=["GET"], name="auth:sessions"),
            Route(
                f"{p}/sessions/{{session_id}}",
                self.revoke_session,
                methods=["DELETE"],
                name="auth:revoke-session",
            ),
            Route(f"{p}/tenants", self.my_tenants, methods=["GET"], name="auth:tenants"),
            Route(f"{p}/switch-tenant", self.switch_tenant, methods=["POST"], name="auth:switch-tenant"),
            Route(
                f"{p}/invitations/accept",
                self.accept_invitation,
                methods=["POST"],
                name="auth:accept-invitation",
            ),
            Route(f"{p}/password", self.change_password, methods=["POST"], name="auth:password"),
            Route(f"{p}/password-reset", self.password_reset, methods=["POST"], name="auth:password-reset"),
            Route(
                f"{p}/password-reset/confirm",
                self.password_reset_confirm,
                methods=["POST"],
                name="auth:password-reset-confirm",
            ),
            Route("/.well-known/jwks.json", self.jwks, methods=["GET"], name="jwks"),
        ]

    # -- helpers ---------------------------------------------------------- #

    def pair_response(self, pair: TokenPair, status: int = 200) -> Response:
        """``pair`` as JSON, with the rotated refresh token in its HttpOnly cookie."""
        response = JSONResponse(pair.as_dict(), status, headers=NO_STORE)
        response.set_cookie(
            COOKIE,
            pair.refresh_token,
            max_age=self.settings.refresh_token_ttl,
            path=self.prefix,
            httponly=True,
            samesite="strict",
            secure=self.secure,
        )
        return response

    def _clear_cookie(self, response: Response) -> Response:
        response.delete_cookie(COOKIE, path=self.prefix, httponly=True, samesite="strict", secure=self.secure)
        return response

    def _check_origin(self, request: Request) -> None:
        """A cookie refresh must come from this site: same origin or a trusted one.

        Browsers send ``Origin`` on every POST; outside development a cookie
        refresh without it is refused too (a client without a browser sends the
        token in the body instead).
        """
        origin = request.headers.get("origin")
        if origin is None:
            if self.settings.is_development:
                return
            raise PermissionDeniedError("A cookie refresh needs the Origin header.")
        host = request.headers.get("host", "")
        if urlsplit(origin).netloc == host or origin in self.settings.csrf_trusted_origins:
            return
        raise PermissionDeniedError("Cross-site refresh refused.")

    async def _per_account(self, email: str, name: str) -> None:
        key = rate_key("account", account_subject(email), name)
        await self.rate_limiter.check(key, self.settings.rate_limit_auth, policy="auth-account")

    # -- handlers --------------------------------------------------------- #

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
    async def register(self, request: Request) -> Response:
        body = await parse_body(request, RegisterIn, max_depth=self.depth)
        named = body.invite_token is None or bool(request.headers.get(self.settings.tenant_header))
        tenant = request_tenant(request) if body.tenant_name is None and named else None
        user, ref, role = await self.accounts.register(
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

    @describe(
        summary="Sign in: an access token and a rotating refresh token (or a 2FA challenge)",
        body=LoginIn,
        response=LoginOut,
        responses={
            401: "Wrong email or password.",
            403: "Not a member of the named tenant.",
            404: "Unknown tenant.",
            423: "Locked after repeated failures.",
        },
        tags=["auth"],
        public=True,
    )
    async def login(self, request: Request) -> Response:
        body = await parse_body(request, LoginIn, max_depth=self.depth)
        await self._per_account(body.email, "login")
        tenant = request_tenant(request) if request.headers.get(self.settings.tenant_header) else None
        ip, agent = _client(request)
        outcome = await self.sessions.login(
            email=body.email, password=body.password, tenant=tenant, ip=ip, user_agent=agent
        )
        if isinstance(outcome, Challenge):  # 2FA on: no tokens until the second factor
            return JSONResponse(outcome.as_dict(), headers=NO_STORE)
        return self.pair_response(outcome)

    @describe(
        summary="Rotate the refresh token (body or refresh_token cookie)",
        body=RefreshIn,
        response=TokenPairOut,
        responses={
            401: "Expired, unknown, revoked or reused refresh token.",
            403: "Cookie refresh from another site, or without Origin.",
        },
        tags=["auth"],
        public=True,
    )
    async def refresh(self, request: Request) -> Response:
        token = None
        if int(request.headers.get("content-length") or 0) > 0 or "content-type" in request.headers:
            token = (await parse_body(request, RefreshIn, max_depth=self.depth)).refresh_token
        if token is None:
            token = request.cookies.get(COOKIE)
            if token is not None:
                self._check_origin(request)
        if not token:
            raise InvalidTokenError("Send the refresh token in the body or the refresh_token cookie.")
        pair = await self.sessions.refresh(token, ip=request.state.client_ip)
        return self.pair_response(pair)

    @describe(summary="Sign out this session", status=204, tags=["auth"])
    @requires_auth(enrolment=True, session=True)
    async def logout(self, request: Request) -> Response:
        await self.sessions.logout(request_principal(request))
        return self._clear_cookie(Response(status_code=204))

    @describe(summary="Sign out every session", status=204, tags=["auth"])
    @requires_auth(enrolment=True, session=True)
    async def logout_all(self, request: Request) -> Response:
        await self.sessions.logout_all(request_principal(request).user_id)
        return self._clear_cookie(Response(status_code=204))

    @describe(
        summary="The caller (a user, or an API key) in the current tenant", response=WhoAmIOut, tags=["auth"]
    )
    @requires_auth(enrolment=True)
    async def me(self, request: Request) -> Response:
        principal, tenant, role, permissions = await current_permissions(request)
        if principal.api_key is not None:
            key = principal.api_key
            return JSONResponse(
                {
                    "api_key": {"id": str(key.id), "name": key.name},
                    "tenant": _tenant_json(tenant),
                    "permissions": sorted(permissions),
                },
                headers=NO_STORE,
            )
        email = await self.accounts.email_of(principal.user_id)
        impersonator = principal.impersonator_id
        extra = {}
        if impersonator is not None:
            extra["impersonator"] = {
                "id": str(impersonator),
                "email": await self.accounts.email_of(impersonator),
            }
        return JSONResponse(
            {
                "id": str(principal.user_id),
                "email": email,
                "email_verified": await self.accounts.email_verified(principal.user_id),
                "tenant": _tenant_json(tenant),
                "role": role,
                "permissions": sorted(permissions),
                **extra,
            },
            headers=NO_STORE,
        )

    @describe(summary="The caller's sessions (devices)", response=SessionPage, tags=["auth"])
    @requires_auth(session=True)
    async def list_sessions(self, request: Request) -> Response:
        principal = request_principal(request)
        rows = await self.sessions.list(principal.user_id)
        actors = {s.impersonator_id for s in rows if s.impersonator_id is not None}
        emails = {actor: await self.accounts.email_of(actor) for actor in actors}
        items = [
            {
                "id": str(s.id),
                "user_agent": s.user_agent,
                "ip": s.ip,
                "tenant_id": str(s.tenant_id),
                "created_at": s.created_at.isoformat(),
                "last_used_at": s.last_used_at.isoformat(),
                "current": s.id == principal.session_id,
                "impersonated_by": (
                    {"id": str(s.impersonator_id), "email": emails[s.impersonator_id]}
                    if s.impersonator_id
                    else None
                ),
            }
            for s in rows
        ]
        return JSONResponse({"items": items, "next_cursor": None}, headers=NO_STORE)

    @describe(
        summary="Sign a device out",
        status=204,
        responses={404: "Not one of the caller's sessions."},
        tags=["auth"],
    )
    @requires_auth(session=True)
    async def revoke_session(self, request: Request) -> Response:
        principal = request_principal(request)
        session_id = path_uuid(request, "session_id", missing="No such session.")
        await self.sessions.revoke_device(principal.user_id, session_id)
        response = Response(status_code=204)
        return self._clear_cookie(response) if session_id == principal.session_id else response

    @describe(summary="The tenants the caller belongs to", response=MyTenantPage, tags=["auth"])
    @requires_auth(session=True)
    async def my_tenants(self, request: Request) -> Response:
        principal = request_principal(request)
        items = [
            {
                "id": str(tenant.id),
                "slug": tenant.slug,
                "name": tenant.name,
                "role": role,
                "status": tenant.status,
                "current": tenant.id == principal.tenant_id,
            }
            for tenant, role in await self.tenancy.memberships_of(principal.user_id)
        ]
        return JSONResponse({"items": items, "next_cursor": None}, headers=NO_STORE)

    @describe(
        summary="A new token pair bound to another membership",
        body=SwitchTenantIn,
        response=TokenPairOut,
        responses={403: "Not a member of that tenant.", 404: "Unknown tenant."},
        tags=["auth"],
    )
    @requires_auth(session=True)
    async def switch_tenant(self, request: Request) -> Response:
        principal = request_principal(request)
        body = await parse_body(request, SwitchTenantIn, max_depth=self.depth)
        tenant = await self.directory.find(body.tenant)
        if tenant is None:
            raise TenantNotFoundError("Unknown tenant.")
        ip, agent = _client(request)
        return self.pair_response(
            await self.sessions.switch_tenant(principal, tenant, ip=ip, user_agent=agent)
        )

    @describe(
        summary="Join the inviting tenant",
        body=AcceptInvitationIn,
        response=MembershipOut,
        responses={
            403: "Invitation issued to another email.",
            404: "Unknown, expired, revoked or used invitation.",
            409: "Already a member.",
        },
        tags=["auth"],
    )
    @requires_auth(session=True)
    async def accept_invitation(self, request: Request) -> Response:
        principal = request_principal(request)
        body = await parse_body(request, AcceptInvitationIn, max_depth=self.depth)
        tenant, role = await self.tenancy.accept_invitation(principal.user_id, body.invite_token)
        await self.accounts.profile_changed(principal.user_id)  # the email is verified now
        return JSONResponse(
            {"tenant": _tenant_json(tenant), "user_id": str(principal.user_id), "role": role}, 200
        )

    @describe(
        summary="Change the password (other sessions end)",
        body=PasswordChangeIn,
        status=204,
        responses={401: "Wrong current password.", 423: "Locked after repeated failures."},
        tags=["auth"],
    )
    @requires_auth(session=True)
    async def change_password(self, request: Request) -> Response:
        body = await parse_body(request, PasswordChangeIn, max_depth=self.depth)
        await self.accounts.change_password(
            request_principal(request), body.current_password, body.new_password, ip=request.state.client_ip
        )
        return Response(status_code=204)

    @describe(
        summary="Email a password-reset token",
        body=PasswordResetIn,
        response=AcceptedOut,
        status=202,
        tags=["auth"],
        public=True,
    )
    async def password_reset(self, request: Request) -> Response:
        body = await parse_body(request, PasswordResetIn, max_depth=self.depth)
        await self._per_account(body.email, "password-reset")
        self.background.spawn(self.accounts.request_password_reset(body.email))
        return JSONResponse({"detail": "If the account exists, a reset message is on its way."}, 202)

    @describe(
        summary="Set a new password with the emailed token",
        body=PasswordResetConfirmIn,
        status=204,
        responses={400: "Invalid or expired token."},
        tags=["auth"],
        public=True,
    )
    async def password_reset_confirm(self, request: Request) -> Response:
        body = await parse_body(request, PasswordResetConfirmIn, max_depth=self.depth)
        await self.accounts.confirm_password_reset(body.token, body.new_password)
        return Response(status_code=204)

    @describe(
        summary="Public keys verifying access tokens",
        response=JWKSOut,
        responses={404: "Tokens are signed with a shared secret (HS256)."},
        tags=["keys"],
        public=True,
    )
    async def jwks(self, request: Request) -> Response:
        document = self.keys.jwks()
        if document is None:
            raise NotFoundError("No public keys: tokens are signed with a shared secret.")
        return JSONResponse(document, headers={"Cache-Control": "public, max-age=300"})
