"""``/auth/oidc/*``, ``/auth/sso/*``, ``/auth/identities`` and ``/auth/email/verify*``."""

from __future__ import annotations

import contextlib
import re
import secrets
import uuid
from collections.abc import Callable, Sequence
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from tenantkit.auth.mfa import Challenge
from tenantkit.auth.tokens import TokenPair
from tenantkit.db.models import UserIdentity
from tenantkit.errors import NotFoundError, PermissionDeniedError, ProblemError
from tenantkit.events import Events
from tenantkit.federation.base import TenantProvider, TenantProviders
from tenantkit.federation.flow import BINDING_COOKIE, Flow, FlowStore
from tenantkit.federation.oidc import OidcClient, OidcError, OidcProvider, redirect_origin, same_issuer
from tenantkit.federation.signin import Assertion, FederatedSignIn, SignInResult
from tenantkit.federation.verification import EmailVerification
from tenantkit.http import NO_STORE, RequestModel, parse_body, path_uuid
from tenantkit.http import ORJSONResponse as JSONResponse
from tenantkit.openapi import describe
from tenantkit.openapi.schemas import TokenPairOut
from tenantkit.rbac.decorators import request_principal, requires_auth
from tenantkit.security.ratelimit import RateLimiter, rate_key
from tenantkit.settings import Settings

__all__ = ["FederationRoutes", "check_redirect_to", "platform_providers"]

_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MAX_REDIRECT = 2048


class ProviderOut(BaseModel):
    """A platform identity provider a user may sign in with."""

    name: str
    authorize_url: str


class ProvidersOut(BaseModel):
    items: list[ProviderOut]


class IdentityOut(BaseModel):
    """A federated identity linked to the caller."""

    id: str = Field(json_schema_extra={"format": "uuid"})
    provider: str = Field(description="`oidc:<name>` or `sso:<tenant id>`.")
    issuer: str
    email: str | None
    created_at: str
    last_used_at: str | None


class IdentityPage(BaseModel):
    items: list[IdentityOut]
    next_cursor: str | None = None


class VerifyConfirmIn(RequestModel):
    token: Annotated[str, Field(min_length=1, max_length=200)]


def platform_providers(settings: Settings) -> dict[str, OidcProvider]:
    """The providers of ``TENANTKIT_OIDC_PROVIDERS`` by name (trusted: no SSRF guard)."""
    return {
        p.name: OidcProvider(
            key=f"oidc:{p.name}",
            name=p.name,
            issuer=p.issuer,
            client_id=p.client_id,
            client_secret=p.client_secret.get_secret_value(),
            scopes=tuple(p.scopes),
        )
        for p in settings.oidc_providers
    }


def check_redirect_to(value: str | None, allowlist: Sequence[str]) -> str | None:
    """``value`` when it is a same-site path or an allow-listed URL; else 400 (no open redirect).

    A relative path must start with one ``/`` (not ``//`` nor ``/\\``). An
    absolute URL must be http(s) without user info, and either equal an entry
    of the allow list or share the origin of an entry that is an origin (no path).
    """
    if value is None or value == "":
        return None
    if len(value) > _MAX_REDIRECT or any(ord(ch) < 0x21 or ord(ch) == 0x7F or ch == "\\" for ch in value):
        raise OidcError("redirect_to is not allowed.")
    if value.startswith("/"):
        if value.startswith("//"):
            raise OidcError("redirect_to is not allowed.")
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        raise OidcError("redirect_to is not allowed.") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        raise OidcError("redirect_to is not allowed.")
    origin = redirect_origin(value)
    for entry in allowlist:
        entry_parts = urlsplit(entry)
        if entry_parts.path in ("", "/") and not entry_parts.query and redirect_origin(entry) == origin:
            return value
        if value == entry:
            return value
    raise OidcError("redirect_to is not allowed.")


def _identity_json(identity: UserIdentity) -> dict[str, Any]:
    return {
        "id": str(identity.id),
        "provider": identity.provider,
        "issuer": identity.issuer,
        "email": identity.email,
        "created_at": identity.created_at.isoformat(),
        "last_used_at": identity.last_used_at.isoformat() if identity.last_used_at else None,
    }


class FederationRoutes:
    """The federated-identity API.

    Args:
        settings: Providers, allow list, flow lifetime, cookies.
        client: Talks to the providers.
        flows: Sign-ins in progress.
        signin: Resolves identities to users and starts sessions.
        verification: Email verification.
        rate_limiter: Per-address budget of the sign-in routes (``TENANTKIT_RATE_LIMIT_AUTH``).
        events: Security log of failed sign-ins.
        pair_response: Renders a token pair with its refresh cookie (the auth routes' own).
        tenant_providers: Tenants' single sign-on (``/auth/sso/*`` answer 404 without it).
        prefix: Where the auth routes live (also the binding cookie's path).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        client: OidcClient,
        flows: FlowStore,
        signin: FederatedSignIn,
        verification: EmailVerification,
        rate_limiter: RateLimiter,
        events: Events,
        pair_response: Callable[[TokenPair], Response],
        tenant_providers: TenantProviders | None = None,
        prefix: str = "/auth",
    ) -> None:
        self.settings = settings
        self.client = client
        self.flows = flows
        self.signin = signin
        self.verification = verification
        self.rate_limiter = rate_limiter
        self.events = events
        self.pair_response = pair_response
        self.tenant_providers = tenant_providers
        self.prefix = prefix
        self.providers = platform_providers(settings)
        self.secure = not settings.is_development
        self.depth = settings.max_json_depth

    def routes(self) -> list[BaseRoute]:
        """The routes, named ``auth:oidc-*``, ``auth:sso-*``, ``auth:identities*``, ``auth:email-verify*``."""
        p = self.prefix
        return [
            Route(f"{p}/oidc/providers", self.list_providers, methods=["GET"], name="auth:oidc-providers"),
            Route(
                f"{p}/oidc/{{name}}/authorize", self.authorize, methods=["GET"], name="auth:oidc-authorize"
            ),
            Route(f"{p}/oidc/{{name}}/callback", self.callback, methods=["GET"], name="auth:oidc-callback"),
            Route(f"{p}/oidc/{{name}}/link", self.link, methods=["POST"], name="auth:oidc-link"),
            Route(f"{p}/identities", self.list_identities, methods=["GET"], name="auth:identities"),
            Route(
                f"{p}/identities/{{identity_id}}",
                self.unlink,
                methods=["DELETE"],
                name="auth:identity-unlink",
            ),
            Route(
                f"{p}/sso/{{tenant_slug}}/authorize",
                self.sso_authorize,
                methods=["GET"],
                name="auth:sso-authorize",
            ),
            Route(
                f"{p}/sso/{{tenant_slug}}/callback",
                self.sso_callback,
                methods=["GET"],
                name="auth:sso-callback",
            ),
            Route(f"{p}/email/verify", self.verify_email, methods=["POST"], name="auth:email-verify"),
            Route(
                f"{p}/email/verify/confirm",
                self.confirm_email,
                methods=["POST"],
                name="auth:email-verify-confirm",
            ),
        ]

    # -- helpers ------------------------------------------------------------- #

    def _base_url(self, request: Request) -> str:
        if self.settings.public_base_url:
            return self.settings.public_base_url
        return str(request.base_url).rstrip("/")

    async def _limit(self, request: Request, name: str) -> None:
        ip = request.state.client_ip or "unknown"
        await self.rate_limiter.check(
            rate_key("ip", str(ip), name), self.settings.rate_limit_auth, policy="auth-ip"
        )

    def _provider(self, request: Request) -> OidcProvider:
        provider = self.providers.get(str(request.path_params["name"]))
        if provider is None:
            raise NotFoundError("No such identity provider.")
        return provider

    async def _tenant_provider(self, request: Request) -> tuple[TenantProvider, OidcProvider]:
        slug = str(request.path_params["tenant_slug"]).lower()
        found = await self.tenant_providers.for_slug(slug) if self.tenant_providers is not None else None
        if found is None:
            raise NotFoundError("This tenant has no single sign-on.")
        return found, OidcProvider(
            key=f"sso:{found.tenant_id}",
            name=f"sso:{found.tenant_slug}",
            issuer=found.issuer.rstrip("/"),
            client_id=found.client_id,
            client_secret=found.client_secret,
            guarded=True,
        )

    async def _start(self, request: Request, provider: OidcProvider, flow: Flow) -> Response:
        binding = self.flows.binding_value(request.cookies.get(BINDING_COOKIE))
        state = await self.flows.begin(flow, binding)
        url = await self.client.authorization_url(
            provider,
            redirect_uri=flow.redirect_uri,
            state=state,
            nonce=flow.nonce,
            code_verifier=flow.code_verifier,
        )
        response = RedirectResponse(url, status_code=302, headers=NO_STORE)
        response.set_cookie(
            BINDING_COOKIE,
            binding,
            max_age=self.settings.oidc_flow_ttl,
            path=self.prefix,
            httponly=True,
            samesite="lax",  # Strict would not come back on the provider's cross-site redirect
            secure=self.secure,
        )
        return response

    def _new_flow(
        self, provider: OidcProvider, redirect_uri: str, redirect_to: str | None, **extra: Any
    ) -> Flow:
        return Flow(
            provider=provider.key,
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(64),
            redirect_uri=redirect_uri,
            redirect_to=redirect_to,
            **extra,
        )

    def _redirect_to(self, request: Request) -> str | None:
        return check_redirect_to(
            request.query_params.get("redirect_to"), self.settings.oidc_redirect_allowlist
        )

    async def _assertion(
        self, request: Request, provider: OidcProvider, expected_mode: Sequence[str]
    ) -> tuple[Flow, Assertion]:
        """Finish the flow of this callback and verify what the provider says; 400 on any fault."""
        params = request.query_params
        try:
            error = params.get("error")
            if error is not None:
                if params.get("state"):
                    await self._burn(params.get("state"))
                name = error if _ERROR_CODE.match(error) else "invalid_error"
                raise OidcError(f"The identity provider answered {name}.", provider_error=name)
            flow = await self.flows.finish(params.get("state"), request.cookies.get(BINDING_COOKIE))
            if flow.provider != provider.key or flow.mode not in expected_mode:
                raise OidcError("This sign-in was started for another provider.")
            if not same_issuer(provider.issuer, params.get("iss")):
                raise OidcError("The answer comes from another issuer.")
            code = params.get("code")
            if not code or len(code) > 2048:
                raise OidcError("The identity provider sent no authorization code.")
            token = await self.client.exchange(
                provider, code=code, redirect_uri=flow.redirect_uri, code_verifier=flow.code_verifier
            )
            claims = await self.client.id_token_claims(provider, token, nonce=flow.nonce)
            if "email" not in claims and isinstance(token.get("access_token"), str):
                info = await self.client.userinfo(provider, token["access_token"], subject=str(claims["sub"]))
                for name_, value in info.items():
                    if name_ not in ("iss", "aud", "sub", "exp", "iat", "nonce", "azp"):
                        claims.setdefault(name_, value)
            return flow, Assertion.from_claims(provider.key, provider.name, str(claims["iss"]), claims)
        except OidcError as exc:
            self.events.security(
                "federated.failed",
                ip=request.state.client_ip,
                data={"provider": provider.key, "reason": exc.detail[:200]},
            )
            raise

    async def _burn(self, state: str | None) -> None:
        with contextlib.suppress(ProblemError):
            await self.flows.finish(state, None)

    def _answer(self, result: SignInResult, redirect_to: str | None) -> Response:
        outcome = result.outcome
        if isinstance(outcome, Challenge):  # 2FA on: no tokens until the second factor
            return JSONResponse(outcome.as_dict(), headers=NO_STORE)
        rendered = self.pair_response(outcome)
        if redirect_to is None:
            return rendered
        response = RedirectResponse(redirect_to, status_code=302, headers=NO_STORE)
        for cookie in rendered.headers.getlist("set-cookie"):  # the refresh cookie only, no token in the URL
            response.headers.append("set-cookie", cookie)
        return response

    # -- platform providers ---------------------------------------------------- #

    @describe(
        summary="The identity providers one may sign in with",
        response=ProvidersOut,
        tags=["auth"],
        public=True,
    )
    async def list_providers(self, request: Request) -> Response:
        base = self._base_url(request)
        items = [
            {"name": name, "authorize_url": f"{base}{self.prefix}/oidc/{name}/authorize"}
            for name in self.providers
        ]
        return JSONResponse({"items": items})

    @describe(
        summary="Start signing in with an identity provider (302 to it)",
        status=302,
        responses={
            400: "redirect_to not allowed, or the provider cannot be reached.",
            404: "Unknown provider.",
        },
        tags=["auth"],
        public=True,
    )
    async def authorize(self, request: Request) -> Response:
        await self._limit(request, "oidc")
        provider = self._provider(request)
        redirect_to = self._redirect_to(request)
        redirect_uri = f"{self._base_url(request)}{self.prefix}/oidc/{provider.name}/callback"
        return await self._start(request, provider, self._new_flow(provider, redirect_uri, redirect_to))

    @describe(
        summary="The identity provider's answer: a token pair as login (302 to redirect_to when given)",
        response=TokenPairOut,
        responses={
            302: "To the flow's redirect_to, with the refresh cookie.",
            400: "Bad or replayed state, missing binding cookie, provider error, invalid ID token.",
            403: "Refused by a plugin, or not a member.",
            404: "Unknown provider.",
            409: "An account with this email exists (account-exists), or the identity is another account's.",
        },
        tags=["auth"],
        public=True,
    )
    async def callback(self, request: Request) -> Response:
        await self._limit(request, "oidc")
        provider = self._provider(request)
        flow, assertion = await self._assertion(request, provider, ("signin", "link"))
        ip, agent = request.state.client_ip, request.headers.get("user-agent", "")
        if flow.mode == "link":
            assert flow.user_id is not None
            identity = await self.signin.link(
                assertion,
                uuid.UUID(flow.user_id),
                tenant_id=uuid.UUID(flow.tenant_id) if flow.tenant_id else None,
                session_id=uuid.UUID(flow.session_id) if flow.session_id else None,
                ip=ip,
            )
            if flow.redirect_to is not None:
                return RedirectResponse(flow.redirect_to, status_code=302, headers=NO_STORE)
            return JSONResponse(_identity_json(identity), headers=NO_STORE)
        result = await self.signin.sign_in(assertion, ip=ip, user_agent=agent)
        return self._answer(result, flow.redirect_to)

    @describe(
        summary="Link an identity provider's account to the caller (302 to the provider)",
        status=302,
        responses={
            400: "redirect_to not allowed.",
            403: "Not the user's own session.",
            404: "Unknown provider.",
        },
        tags=["auth"],
    )
    @requires_auth(session=True)
    async def link(self, request: Request) -> Response:
        principal = request_principal(request)
        if principal.impersonator_id is not None:
            raise PermissionDeniedError("Identities cannot be linked under impersonation.")
        provider = self._provider(request)
        redirect_to = self._redirect_to(request)
        redirect_uri = f"{self._base_url(request)}{self.prefix}/oidc/{provider.name}/callback"
        flow = self._new_flow(
            provider,
            redirect_uri,
            redirect_to,
            mode="link",
            user_id=str(principal.user_id),
            tenant_id=str(principal.tenant_id),
            session_id=str(principal.session_id),
        )
        return await self._start(request, provider, flow)

    @describe(summary="The caller's linked identities", response=IdentityPage, tags=["auth"])
    @requires_auth(session=True)
    async def list_identities(self, request: Request) -> Response:
        principal = request_principal(request)
        items = [_identity_json(i) for i in await self.signin.identities(principal.user_id)]
        return JSONResponse({"items": items, "next_cursor": None}, headers=NO_STORE)

    @describe(
        summary="Unlink an identity",
        status=204,
        responses={404: "Not one of the caller's identities.", 409: "It is the only way to sign in."},
        tags=["auth"],
    )
    @requires_auth(session=True)
    async def unlink(self, request: Request) -> Response:
        principal = request_principal(request)
        if principal.impersonator_id is not None:
            raise PermissionDeniedError("Identities cannot be unlinked under impersonation.")
        identity_id = path_uuid(request, "identity_id", missing="No such identity.")
        await self.signin.unlink(principal.user_id, identity_id, tenant_id=principal.tenant_id)
        return Response(status_code=204)

    # -- tenants' single sign-on ------------------------------------------------- #

    @describe(
        summary="Start signing in through a tenant's single sign-on (302 to its provider)",
        status=302,
        responses={
            400: "redirect_to not allowed, or the provider cannot be reached.",
            404: "No SSO for this tenant.",
        },
        tags=["auth"],
        public=True,
    )
    async def sso_authorize(self, request: Request) -> Response:
        await self._limit(request, "sso")
        tenant_provider, provider = await self._tenant_provider(request)
        redirect_to = self._redirect_to(request)
        redirect_uri = f"{self._base_url(request)}{self.prefix}/sso/{tenant_provider.tenant_slug}/callback"
        flow = self._new_flow(
            provider, redirect_uri, redirect_to, mode="sso", tenant_id=str(tenant_provider.tenant_id)
        )
        return await self._start(request, provider, flow)

    @describe(
        summary="A tenant's provider's answer: a token pair bound to that tenant",
        response=TokenPairOut,
        responses={
            302: "To the flow's redirect_to, with the refresh cookie.",
            400: "Bad or replayed state, missing binding cookie, provider error, invalid ID token.",
            403: "The email's domain is not the tenant's, or refused by a plugin.",
            404: "No SSO for this tenant.",
            409: "An account with this email exists (account-exists).",
        },
        tags=["auth"],
        public=True,
    )
    async def sso_callback(self, request: Request) -> Response:
        await self._limit(request, "sso")
        tenant_provider, provider = await self._tenant_provider(request)
        flow, assertion = await self._assertion(request, provider, ("sso",))
        if flow.tenant_id != str(tenant_provider.tenant_id):
            raise OidcError("This sign-in was started for another tenant.")
        result = await self.signin.sign_in_sso(
            assertion,
            tenant_provider,
            ip=request.state.client_ip,
            user_agent=request.headers.get("user-agent", ""),
        )
        return self._answer(result, flow.redirect_to)

    # -- email verification ---------------------------------------------------------- #

    @describe(
        summary="Mail a token verifying the caller's email address",
        status=202,
        responses={409: "The address is verified already."},
        tags=["auth"],
    )
    @requires_auth(enrolment=True, session=True)
    async def verify_email(self, request: Request) -> Response:
        principal = request_principal(request)
        await self.rate_limiter.check(
            rate_key("user", str(principal.user_id), "email-verify"),
            self.settings.rate_limit_auth,
            policy="auth-user",
        )
        await self.verification.request(principal.user_id, tenant_id=principal.tenant_id)
        return JSONResponse({"detail": "A verification message is on its way."}, 202)

    @describe(
        summary="Confirm the email address with the mailed token",
        body=VerifyConfirmIn,
        status=204,
        responses={400: "Invalid, expired or used token."},
        tags=["auth"],
        public=True,
    )
    async def confirm_email(self, request: Request) -> Response:
        body = await parse_body(request, VerifyConfirmIn, max_depth=self.depth)
        await self.verification.confirm(body.token)
        return Response(status_code=204)
