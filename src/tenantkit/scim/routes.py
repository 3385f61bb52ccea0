"""``/scim/v2``: SCIM 2.0 (RFC 7643/7644) for a tenant's directory, authenticated by a SCIM token.

The bearer token decides the tenant; user access tokens and API keys are not
accepted here (the kit's identity pass ignores a foreign ``Authorization`` header
under ``/scim/v2/`` and these handlers check it). Every answer, errors
included, is ``application/scim+json``; every error is a SCIM ``Error``
document. Requests are limited per token (``TENANTKIT_RATE_LIMIT_API``) and
failed authentications per client address (``TENANTKIT_RATE_LIMIT_AUTH``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pydantic
from scim2_models import (
    Context,
    EnterpriseUser,
    Error,
    ListResponse,
    PatchOp,
    ResponseParameters,
    SCIMException,
    ScimFilter,
    SearchRequest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tenantkit.context import TenantRef
from tenantkit.errors import ProblemError
from tenantkit.http import edge_errors
from tenantkit.openapi import describe
from tenantkit.scim.errors import SCIM_MEDIA_TYPE, ScimError, scim_response
from tenantkit.scim.models import (
    USER_SCHEMA,
    InputUser,
    ScimGroup,
    ScimUser,
    resource_types,
    schemas,
    service_provider_config,
)
from tenantkit.scim.service import Page, ScimDirectory, acting_token
from tenantkit.scim.tokens import ScimTokenRecord, ScimTokens
from tenantkit.security.body_limit import BodyTooLarge
from tenantkit.security.ratelimit import RateLimiter, RateLimitResult, limit_headers, rate_key
from tenantkit.settings import RateLimit
from tenantkit.tenancy.directory import TenantDirectory

__all__ = ["SCIM_PREFIX", "ScimRoutes"]

SCIM_PREFIX = "/scim/v2"
_ENTERPRISE = EnterpriseUser.__schema__
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="SCIM"'}
_QUERY_KEYS = {
    "filter": "filter",
    "startindex": "startIndex",
    "count": "count",
    "attributes": "attributes",
    "excludedattributes": "excludedAttributes",
}
#: Paths under the prefix that exist, with their methods (anything else is a SCIM 404).
_KNOWN: dict[str, frozenset[str]] = {
    "ServiceProviderConfig": frozenset({"GET", "HEAD"}),
    "ResourceTypes": frozenset({"GET", "HEAD"}),
    "ResourceTypes/*": frozenset({"GET", "HEAD"}),
    "Schemas": frozenset({"GET", "HEAD"}),
    "Schemas/*": frozenset({"GET", "HEAD"}),
    "Users": frozenset({"GET", "HEAD", "POST"}),
    "Users/.search": frozenset({"POST"}),
    "Users/*": frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"}),
    "Groups": frozenset({"GET", "HEAD", "POST"}),
    "Groups/.search": frozenset({"POST"}),
    "Groups/*": frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"}),
}

Handler = Callable[[Request, TenantRef], Awaitable[Response]]


def _first_error(errors: pydantic.ValidationError, default_type: str = "invalidValue") -> ScimError:
    found = Error.from_validation_errors(errors)
    if not found:
        return ScimError(400, "Invalid request.", default_type)
    error = found[0]
    return ScimError(
        int(error.status or 400), error.detail or "Invalid request.", error.scim_type or default_type
    )


def _describe(summary: str, *, status: int = 200) -> Callable[[Any], Any]:
    return describe(
        summary=summary, status=status, tags=["scim"], media_type=SCIM_MEDIA_TYPE, rate_limited=False
    )


class ScimRoutes:
    """The ``/scim/v2`` endpoints.

    Args:
        tokens: Verifies SCIM tokens.
        directory: Users and groups of the token's tenant.
        tenants: Finds the token's tenant (a suspended tenant is refused).
        limiter: The kit's rate limiter.
        token_rate: Requests per SCIM token.
        failure_rate: Failed authentications per client address.
        max_json_depth: Deepest JSON body accepted.
    """

    def __init__(
        self,
        *,
        tokens: ScimTokens,
        directory: ScimDirectory,
        tenants: TenantDirectory,
        limiter: RateLimiter | None = None,
        token_rate: RateLimit | None = None,
        failure_rate: RateLimit | None = None,
        max_json_depth: int = 32,
    ) -> None:
        self.tokens = tokens
        self.directory = directory
        self.tenants = tenants
        self.limiter = limiter
        self.token_rate = token_rate
        self.failure_rate = failure_rate
        self.depth = max_json_depth

    def routes(self) -> list[BaseRoute]:
        """The routes, under :data:`SCIM_PREFIX` (a catch-all answers SCIM 404/405 last)."""
        p = SCIM_PREFIX

        def route(path: str, handler: Handler, methods: list[str], name: str) -> Route:
            return Route(
                p + path,
                self._endpoint(handler),
                methods=methods,
                name=f"scim:{name}",
                include_in_schema=False,
            )

        return [
            route("/ServiceProviderConfig", self.service_provider_config, ["GET"], "service-provider-config"),
            route("/ResourceTypes", self.resource_types, ["GET"], "resource-types"),
            route("/ResourceTypes/{name}", self.resource_type, ["GET"], "resource-type"),
            route("/Schemas", self.schemas, ["GET"], "schemas"),
            route("/Schemas/{name}", self.schema, ["GET"], "schema"),
            route("/Users", self.list_users, ["GET"], "users:list"),
            route("/Users", self.create_user, ["POST"], "users:create"),
            route("/Users/.search", self.search_users, ["POST"], "users:search"),
            route("/Users/{id}", self.get_user, ["GET"], "users:get"),
            route("/Users/{id}", self.replace_user, ["PUT"], "users:replace"),
            route("/Users/{id}", self.patch_user, ["PATCH"], "users:patch"),
            route("/Users/{id}", self.delete_user, ["DELETE"], "users:delete"),
            route("/Groups", self.list_groups, ["GET"], "groups:list"),
            route("/Groups", self.create_group, ["POST"], "groups:create"),
            route("/Groups/.search", self.search_groups, ["POST"], "groups:search"),
            route("/Groups/{id}", self.get_group, ["GET"], "groups:get"),
            route("/Groups/{id}", self.replace_group, ["PUT"], "groups:replace"),
            route("/Groups/{id}", self.patch_group, ["PATCH"], "groups:patch"),
            route("/Groups/{id}", self.delete_group, ["DELETE"], "groups:delete"),
            Route(
                p + "/{rest:path}",
                self._endpoint(self.elsewhere),
                methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                name="scim:elsewhere",
                include_in_schema=False,
            ),
        ]

    # ------------------------------------------------------------------ #
    # The frame every endpoint runs in
    # ------------------------------------------------------------------ #

    def _endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            try:
                tenant = await self._authenticate(request)
                return await handler(request, tenant)
            except ScimError as error:
                return error.to_response()
            except BodyTooLarge:
                return ScimError(413, "The request body is too large.").to_response()
            except ProblemError as error:
                if error.status >= 500:
                    raise  # an outage: the kit's 503
                return ScimError(error.status, error.detail).to_response()
            except SCIMException as error:  # raised by scim2-models outside validation
                found = error.to_error()
                status = int(found.status or 400)
                return ScimError(status, found.detail or "Invalid request.", found.scim_type).to_response()
            except pydantic.ValidationError as errors:
                return _first_error(errors).to_response()

        return endpoint

    async def _authenticate(self, request: Request) -> TenantRef:
        authorization = request.headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        record: ScimTokenRecord | None = None
        if scheme.lower() == "bearer" and token:
            try:
                record = await self.tokens.authenticate(token)
            except ProblemError:
                record = None
        if record is None:
            await self._count_failure(request)
            raise ScimError(401, "A valid SCIM token is required.", headers=_CHALLENGE)
        await self._count(rate_key("scim", str(record.id), "api"), self.token_rate, exact=False)
        acting_token.set(str(record.id))
        tenant = await self.tenants.get(record.tenant_id)
        if tenant is None:
            raise ScimError(401, "A valid SCIM token is required.", headers=_CHALLENGE)
        if tenant.status != "active":
            raise ScimError(403, "This tenant is suspended.")
        return tenant

    async def _count_failure(self, request: Request) -> None:
        address = request.scope.get("state", {}).get("client_ip") or (
            request.client.host if request.client else "unknown"
        )
        await self._count(rate_key("ip", str(address), "scim-auth"), self.failure_rate, exact=True)

    async def _count(self, key: str, rate: RateLimit | None, *, exact: bool) -> None:
        if self.limiter is None or rate is None:
            return
        allowed, remaining, retry_after = await self.limiter.count(key, rate, "scim", exact=exact)
        if not allowed:
            result = RateLimitResult("scim", rate.limit, rate.period, allowed, remaining, retry_after)
            headers = {k: v for k, v in limit_headers([result]).items() if k == "Retry-After"}
            raise ScimError(429, "Too many requests; retry later.", headers=headers or {"Retry-After": "1"})

    @staticmethod
    def _base(request: Request) -> str:
        return str(request.base_url).rstrip("/") + SCIM_PREFIX

    async def _body(self, request: Request) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type and content_type not in ("application/scim+json", "application/json"):
            raise ScimError(415, "Send the body as application/scim+json.")
        raw = await request.body()
        try:
            data = json.loads(raw) if raw else None
        except (ValueError, RecursionError):
            raise ScimError(400, "The body is not valid JSON.", "invalidSyntax") from None
        if not isinstance(data, dict):
            raise ScimError(400, "The body must be a JSON object.", "invalidSyntax")
        if _too_deep(data, self.depth):
            raise ScimError(400, f"JSON nested deeper than {self.depth} levels.", "invalidSyntax")
        if edge_errors(data):
            raise ScimError(
                400,
                "A value holds NUL characters, unpaired surrogates or an out-of-range number.",
                "invalidValue",
            )
        return data

    @staticmethod
    def _query(request: Request) -> dict[str, str]:
        found: dict[str, str] = {}
        for key, value in request.query_params.items():
            name = _QUERY_KEYS.get(key.lower())
            if name is not None:
                found[name] = value
        return found

    @staticmethod
    def _search(model: Any, data: Mapping[str, Any]) -> SearchRequest[Any]:
        try:
            search: SearchRequest[Any] = SearchRequest[model].model_validate(
                dict(data), scim_ctx=Context.SEARCH_REQUEST
            )
        except pydantic.ValidationError as errors:
            raise _first_error(errors, "invalidFilter") from None
        except ValueError as error:  # a SCIMException raised outside pydantic
            raise ScimError(400, str(error), "invalidFilter") from None
        return search

    @staticmethod
    def _parameters(model: Any, request: Request) -> ResponseParameters[Any] | None:
        query = {
            k: v for k, v in ScimRoutes._query(request).items() if k in ("attributes", "excludedAttributes")
        }
        if not query:
            return None
        try:
            parameters: ResponseParameters[Any] = ResponseParameters[model].model_validate(query)
            return parameters
        except (pydantic.ValidationError, ValueError):
            raise ScimError(
                400, "attributes or excludedAttributes names an unknown attribute.", "invalidValue"
            ) from None

    @staticmethod
    def _resource(
        resource: ScimUser | ScimGroup,
        parameters: ResponseParameters[Any] | None = None,
        *,
        status: int = 200,
    ) -> Response:
        ctx = Context.RESOURCE_CREATION_RESPONSE if status == 201 else Context.RESOURCE_QUERY_RESPONSE
        body = resource.model_dump(scim_ctx=ctx, response_parameters=parameters)
        headers = {}
        if status == 201 and resource.meta is not None and resource.meta.location:
            headers["Location"] = resource.meta.location
        return scim_response(body, status, headers=headers)

    @staticmethod
    def _page(model: Any, page: Page, search: SearchRequest[Any] | None) -> Response:
        listing = ListResponse[model](
            total_results=page.total,
            start_index=page.start_index,
            items_per_page=len(page.resources),
            resources=list(page.resources),
        )
        parameters: ResponseParameters[Any] | None = None
        if search is not None and (search.attributes or search.excluded_attributes):
            parameters = ResponseParameters(
                attributes=search.attributes, excluded_attributes=search.excluded_attributes
            )
        body = listing.model_dump(scim_ctx=Context.SEARCH_RESPONSE, response_parameters=parameters)
        return scim_response(body)

    # ------------------------------------------------------------------ #
    # Discovery
    # ------------------------------------------------------------------ #

    @_describe("SCIM: what this service provider supports")
    async def service_provider_config(self, request: Request, tenant: TenantRef) -> Response:
        config = service_provider_config()
        config.meta = _meta("ServiceProviderConfig", f"{self._base(request)}/ServiceProviderConfig")
        return scim_response(config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))

    @_describe("SCIM: the resource types (User, Group)")
    async def resource_types(self, request: Request, tenant: TenantRef) -> Response:
        items = []
        for item in resource_types():
            item.meta = _meta("ResourceType", f"{self._base(request)}/ResourceTypes/{item.id}")
            items.append(item.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
        return scim_response(_listing(items))

    @_describe("SCIM: one resource type")
    async def resource_type(self, request: Request, tenant: TenantRef) -> Response:
        for item in resource_types():
            if item.id == request.path_params["name"]:
                item.meta = _meta("ResourceType", f"{self._base(request)}/ResourceTypes/{item.id}")
                return scim_response(item.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
        raise ScimError(404, "No such resource type.")

    @_describe("SCIM: the schemas of the resources served")
    async def schemas(self, request: Request, tenant: TenantRef) -> Response:
        items = []
        for item in schemas():
            item.meta = _meta("Schema", f"{self._base(request)}/Schemas/{item.id}")
            items.append(item.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
        return scim_response(_listing(items))

    @_describe("SCIM: one schema")
    async def schema(self, request: Request, tenant: TenantRef) -> Response:
        for item in schemas():
            if item.id == request.path_params["name"]:
                item.meta = _meta("Schema", f"{self._base(request)}/Schemas/{item.id}")
                return scim_response(item.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
        raise ScimError(404, "No such schema.")

    async def elsewhere(self, request: Request, tenant: TenantRef) -> Response:
        """Anything else under the prefix: 404, 405 for a known path, 501 for ``/.search`` (not served)."""
        rest = request.path_params.get("rest", "").strip("/")
        if rest == ".search":
            raise ScimError(501, "Searching several resource types at once is not supported.")
        head, _, tail = rest.partition("/")
        key = head if not tail else (f"{head}/.search" if tail == ".search" else f"{head}/*")
        if "/" in tail:
            key = ""
        methods = _KNOWN.get(key)
        if methods is not None and request.method not in methods:
            error = ScimError(405, "Method not allowed.", headers={"Allow": ", ".join(sorted(methods))})
            raise error
        raise ScimError(404, "No such endpoint.")

    # ------------------------------------------------------------------ #
    # Users
    # ------------------------------------------------------------------ #

    @_describe("SCIM: list or filter users")
    async def list_users(self, request: Request, tenant: TenantRef) -> Response:
        search = self._search(ScimUser, self._query(request))
        page = await self.directory.list_users(tenant, search, self._base(request))
        return self._page(ScimUser, page, search)

    @_describe("SCIM: search users (POST /Users/.search)")
    async def search_users(self, request: Request, tenant: TenantRef) -> Response:
        body = await self._body(request)
        body.pop("schemas", None)
        search = self._search(ScimUser, body)
        page = await self.directory.list_users(tenant, search, self._base(request))
        return self._page(ScimUser, page, search)

    @_describe("SCIM: provision a user", status=201)
    async def create_user(self, request: Request, tenant: TenantRef) -> Response:
        data = self._user(await self._body(request), Context.RESOURCE_CREATION_REQUEST)
        created = await self.directory.create_user(tenant, data, self._base(request))
        return self._resource(created, status=201)

    @_describe("SCIM: one user")
    async def get_user(self, request: Request, tenant: TenantRef) -> Response:
        parameters = self._parameters(ScimUser, request)
        user = await self.directory.get_user(tenant, request.path_params["id"], self._base(request))
        return self._resource(user, parameters)

    @_describe("SCIM: replace a user")
    async def replace_user(self, request: Request, tenant: TenantRef) -> Response:
        data = self._user(await self._body(request), Context.RESOURCE_REPLACEMENT_REQUEST)
        user = await self.directory.replace_user(tenant, request.path_params["id"], data, self._base(request))
        return self._resource(user)

    @_describe("SCIM: modify a user (PatchOp)")
    async def patch_user(self, request: Request, tenant: TenantRef) -> Response:
        patch = self._patch(InputUser, await self._body(request))
        user = await self.directory.patch_user(tenant, request.path_params["id"], patch, self._base(request))
        return self._resource(user)

    @_describe("SCIM: deprovision a user (their sessions in this tenant end)", status=204)
    async def delete_user(self, request: Request, tenant: TenantRef) -> Response:
        await self.directory.delete_user(tenant, request.path_params["id"])
        return Response(status_code=204)

    @staticmethod
    def _user(data: dict[str, Any], ctx: Context) -> Any:
        # Extensions other than the enterprise one are not kept: dropped, not refused.
        for key in [k for k in data if k.lower().startswith("urn:") and k != _ENTERPRISE]:
            del data[key]
        if isinstance(data.get("schemas"), list):
            data["schemas"] = [USER_SCHEMA] + ([_ENTERPRISE] if _ENTERPRISE in data else [])
        try:
            return InputUser.model_validate(data, scim_ctx=ctx)
        except pydantic.ValidationError as errors:
            raise _first_error(errors) from None
        except ValueError as error:
            raise ScimError(400, str(error), "invalidValue") from None

    @staticmethod
    def _patch(model: Any, data: dict[str, Any]) -> Any:
        try:
            return PatchOp[model].model_validate(data, scim_ctx=Context.RESOURCE_PATCH_REQUEST)
        except pydantic.ValidationError as errors:
            raise _first_error(errors) from None
        except ValueError as error:
            raise ScimError(400, str(error), "invalidValue") from None

    # ------------------------------------------------------------------ #
    # Groups
    # ------------------------------------------------------------------ #

    @_describe("SCIM: list or filter groups (the tenant's roles)")
    async def list_groups(self, request: Request, tenant: TenantRef) -> Response:
        search = self._search(ScimGroup, self._query(request))
        page = await self.directory.list_groups(tenant, search, self._base(request))
        return self._page(ScimGroup, page, search)

    @_describe("SCIM: search groups (POST /Groups/.search)")
    async def search_groups(self, request: Request, tenant: TenantRef) -> Response:
        body = await self._body(request)
        body.pop("schemas", None)
        search = self._search(ScimGroup, body)
        page = await self.directory.list_groups(tenant, search, self._base(request))
        return self._page(ScimGroup, page, search)

    @_describe("SCIM: create a group (a custom role with no permissions)", status=201)
    async def create_group(self, request: Request, tenant: TenantRef) -> Response:
        data = self._group(await self._body(request), Context.RESOURCE_CREATION_REQUEST)
        group = await self.directory.create_group(tenant, data, self._base(request))
        return self._resource(group, status=201)

    @_describe("SCIM: one group")
    async def get_group(self, request: Request, tenant: TenantRef) -> Response:
        parameters = self._parameters(ScimGroup, request)
        group = await self.directory.get_group(tenant, request.path_params["id"], self._base(request))
        return self._resource(group, parameters)

    @_describe("SCIM: replace a group's members")
    async def replace_group(self, request: Request, tenant: TenantRef) -> Response:
        data = self._group(await self._body(request), Context.RESOURCE_REPLACEMENT_REQUEST)
        group = await self.directory.replace_group(
            tenant, request.path_params["id"], data, self._base(request)
        )
        return self._resource(group)

    @_describe("SCIM: add or remove a group's members (PatchOp)")
    async def patch_group(self, request: Request, tenant: TenantRef) -> Response:
        patch = self._patch(ScimGroup, _entra_member_removals(await self._body(request)))
        group = await self.directory.patch_group(
            tenant, request.path_params["id"], patch, self._base(request)
        )
        return self._resource(group)

    @_describe("SCIM: delete a group (a custom role nobody holds)", status=204)
    async def delete_group(self, request: Request, tenant: TenantRef) -> Response:
        await self.directory.delete_group(tenant, request.path_params["id"])
        return Response(status_code=204)

    @staticmethod
    def _group(data: dict[str, Any], ctx: Context) -> ScimGroup:
        try:
            return ScimGroup.model_validate(data, scim_ctx=ctx)
        except pydantic.ValidationError as errors:
            raise _first_error(errors) from None
        except ValueError as error:
            raise ScimError(400, str(error), "invalidValue") from None


def _entra_member_removals(data: dict[str, Any]) -> dict[str, Any]:
    """Entra ID removes members with a value list, ``{"op": "Remove", "path": "members", "value": [...]}``.

    RFC 7644 selects what to remove with a filter in the path: rewrite each
    listed member as ``members[value eq "<id>"]`` (anything else is left as sent).
    """
    operations = data.get("Operations")
    if not isinstance(operations, list):
        return data
    rewritten: list[Any] = []
    for operation in operations:
        value = operation.get("value") if isinstance(operation, dict) else None
        if (
            isinstance(operation, dict)
            and str(operation.get("op", "")).lower() == "remove"
            and str(operation.get("path", "")).lower() == "members"
            and isinstance(value, list)
            and value
            and all(isinstance(v, dict) and isinstance(v.get("value"), str) for v in value)
        ):
            rewritten += [
                {"op": "remove", "path": f"members[value eq {ScimFilter.quote(v['value'])}]"} for v in value
            ]
        else:
            rewritten.append(operation)
    return {**data, "Operations": rewritten}


def _meta(kind: str, location: str) -> Any:
    from scim2_models import Meta

    return Meta(resource_type=kind, location=location)


def _listing(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": len(items),
        "startIndex": 1,
        "itemsPerPage": len(items),
        "Resources": items,
    }


def _too_deep(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False
