"""``PUT``/``GET``/``DELETE /tenant/sso``: a tenant's own single sign-on, for its administrators."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StrictBool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tenantkit.errors import NotFoundError
from tenantkit.federation.sso import MAX_DOMAINS, SsoConfig, TenantSsoService
from tenantkit.http import NO_STORE, RequestModel, SafeText, json_response, parse_body
from tenantkit.openapi import describe
from tenantkit.rbac.decorators import current_permissions, requires_permissions

__all__ = ["SsoConfigIn", "SsoConfigOut", "SsoRoutes"]


class SsoConfigIn(RequestModel):
    """The tenant's OpenID Connect provider and the email domains it vouches for."""

    protocol: Annotated[SafeText, Field(max_length=16, description="'oidc'; 'saml' is reserved.")] = "oidc"
    issuer: Annotated[SafeText, Field(min_length=1, max_length=500)]
    client_id: Annotated[SafeText, Field(min_length=1, max_length=500)]
    client_secret: (
        Annotated[
            SafeText,
            Field(
                min_length=1,
                max_length=512,
                description="Required the first time; omit it to keep the stored one. Never returned.",
            ),
        ]
        | None
    ) = None
    domains: Annotated[
        list[Annotated[SafeText, Field(min_length=1, max_length=253)]],
        Field(min_length=1, max_length=MAX_DOMAINS),
    ]
    enforce: StrictBool = Field(
        False, description="Refuse password sign-in into this tenant to users of these domains."
    )


class SsoConfigOut(BaseModel):
    """The tenant's single sign-on configuration (the client secret is never shown)."""

    protocol: Literal["oidc"]
    issuer: str
    client_id: str
    domains: list[str]
    enforce: bool
    has_client_secret: bool
    updated_at: str = Field(json_schema_extra={"format": "date-time"})


def _out(config: SsoConfig) -> Response:
    return json_response(config.as_dict(), headers=NO_STORE)


class SsoRoutes:
    """The current tenant's single sign-on configuration (``tenant.manage``).

    Args:
        sso: The configurations' owner.
        max_json_depth: Deepest JSON body accepted.
    """

    def __init__(self, sso: TenantSsoService, *, max_json_depth: int = 32) -> None:
        self.sso = sso
        self.depth = max_json_depth

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/tenant/sso", self.show, methods=["GET"], name="tenant:sso-show"),
            Route("/tenant/sso", self.put, methods=["PUT"], name="tenant:sso-put"),
            Route("/tenant/sso", self.remove, methods=["DELETE"], name="tenant:sso-delete"),
        ]

    @describe(
        summary="The tenant's single sign-on configuration",
        response=SsoConfigOut,
        responses={404: "The tenant has no single sign-on configuration."},
        tags=["tenant"],
    )
    @requires_permissions("tenant.manage")
    async def show(self, request: Request) -> Response:
        _, tenant, _, _ = await current_permissions(request)
        config = await self.sso.get(tenant.id)
        if config is None:
            raise NotFoundError("This tenant has no single sign-on configuration.")
        return _out(config)

    @describe(
        summary="Configure the tenant's single sign-on (OpenID Connect) and claim its email domains",
        body=SsoConfigIn,
        response=SsoConfigOut,
        responses={
            409: "A domain is claimed by another tenant.",
            422: "Bad issuer (not https, private address), domain (IP, wildcard, public mail), "
            "protocol, or no client secret on the first configuration.",
        },
        tags=["tenant"],
    )
    @requires_permissions("tenant.manage")
    async def put(self, request: Request) -> Response:
        principal, tenant, _, _ = await current_permissions(request)
        body = await parse_body(request, SsoConfigIn, max_depth=self.depth)
        config = await self.sso.put(
            tenant,
            protocol=body.protocol,
            issuer=body.issuer,
            client_id=body.client_id,
            client_secret=body.client_secret,
            domains=body.domains,
            enforce=body.enforce,
            actor_id=principal.user_id,
        )
        return _out(config)

    @describe(
        summary="Remove the tenant's single sign-on and release its domains",
        status=204,
        responses={404: "The tenant has no single sign-on configuration."},
        tags=["tenant"],
    )
    @requires_permissions("tenant.manage")
    async def remove(self, request: Request) -> Response:
        principal, tenant, _, _ = await current_permissions(request)
        await self.sso.delete(tenant.id, actor_id=principal.user_id)
        return Response(status_code=204)
