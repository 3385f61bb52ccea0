"""The route contract: what each route declares once, and one reader and one walker of it.

A handler declares its models and public-ness with :func:`tenantkit.openapi.describe`
and its permission with the ``requires_*`` guards; :func:`route_spec` merges
both into one frozen :class:`RouteSpec`. Everything that needs to know about
routes (the OpenAPI document, the start-up permission check, ``tenantkit
routes``, the rate limiter's auth budget and exemptions, the public paths
where a stale token is ignored, the 405 ``Allow`` header) reads it through
:func:`route_spec`, :func:`walk_routes` or :class:`RouteTable`, never the
attributes the decorators write.

Example:
    ```python
    for entry in walk_routes(app.routes):
        print(entry.methods, entry.path, entry.spec.permissions or "public" if entry.spec.public else "")
    ```
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pydantic import BaseModel
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Mount, Route, Router, WebSocketRoute, compile_path
from starlette.types import Receive, Scope, Send

from tenantkit.errors import ConfigurationError

__all__ = [
    "DESCRIPTION_ATTRIBUTE",
    "GUARD_ATTRIBUTE",
    "RouteDispatch",
    "RouteEntry",
    "RouteSpec",
    "RouteTable",
    "allowed_methods",
    "check_routes",
    "compile_router",
    "public_paths",
    "route_spec",
    "walk_routes",
]

#: Attribute :func:`tenantkit.openapi.describe` writes on an endpoint.
DESCRIPTION_ATTRIBUTE = "__tenantkit_openapi__"
#: Attribute the ``requires_*`` guards write on the endpoints they wrap.
GUARD_ATTRIBUTE = "__tenantkit_guard__"

_HTTP_METHODS = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "PATCH", "TRACE", "HEAD")
_SAFE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """Everything a route declares about itself.

    Attributes:
        path: The route's own path (without the prefixes of enclosing mounts).
        methods: The HTTP methods it answers (``HEAD`` included for ``GET``).
        name: The route's name.
        summary: One line for the OpenAPI document.
        description: Longer text (the endpoint's docstring after its first line).
        body: The JSON request body model.
        response: The success response model.
        status: The success status code.
        query: The model of its query parameters.
        responses: Extra statuses it can answer, and why.
        tags: OpenAPI tags.
        public: Declared public (``describe(public=True)``): no bearer token needed,
            a stale one is ignored; a non-safe public route (login, register...)
            counts against the per-address auth budget.
        authenticated: A guard requires an authenticated caller.
        permissions: Permissions a guard requires (all, or any with ``any_of``).
        any_of: Any one of ``permissions`` suffices.
        roles: Roles a guard requires.
        media_type: Media type of a non-JSON success body.
        body_media_type: Media type of a raw request body.
        rate_limited: ``False`` for routes the rate limiter never counts (health, metrics).
        described: ``describe`` was applied.
        extra: Further documentation fields (hand-written query parameters...).
    """

    path: str = ""
    methods: tuple[str, ...] = ()
    name: str | None = None
    summary: str | None = None
    description: str | None = None
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    query: type[BaseModel] | None = None
    responses: Mapping[int, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    public: bool = False
    authenticated: bool = False
    permissions: tuple[str, ...] = ()
    any_of: bool = False
    roles: tuple[str, ...] = ()
    media_type: str | None = None
    body_media_type: str | None = None
    rate_limited: bool = True
    described: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def secured(self) -> bool:
        """A bearer token is needed: guarded, or described without ``public=True``."""
        return self.authenticated or (self.described and not self.public)

    @property
    def tenant_bound(self) -> bool:
        """The route acts in the caller's tenant (a permission or role is checked there)."""
        return bool(self.permissions or self.roles or self.authenticated)

    def auth_budget(self, method: str) -> bool:
        """Whether ``method`` on this route counts against the per-address auth budget."""
        return self.public and method.upper() not in _SAFE


def _unwrap(endpoint: Any) -> Any:
    while isinstance(endpoint, functools.partial):
        endpoint = endpoint.func
    return endpoint


def _docstring(endpoint: Any) -> tuple[str | None, str | None]:
    doc = inspect.getdoc(endpoint) if not inspect.isclass(endpoint) else None
    if not doc:
        return None, None
    first, _, rest = doc.partition("\n")
    return first.strip() or None, rest.strip() or None


def route_spec(target: BaseRoute | Any, method: str | None = None) -> RouteSpec:
    """The contract of a route (or of a bare endpoint), read once from its decorators.

    Args:
        target: A ``Route`` or an endpoint function (a ``functools.partial`` or an
            ``HTTPEndpoint`` class is unwrapped).
        method: For an ``HTTPEndpoint`` class, which of its handlers to read.
    """
    path, name = "", None
    methods: tuple[str, ...] = ()
    endpoint = target
    if isinstance(target, Route):
        path, name = target.path, target.name
        methods = tuple(sorted(target.methods or ()))
        endpoint = target.endpoint
    endpoint = _unwrap(endpoint)
    if inspect.isclass(endpoint):
        handlers = [m for m in _HTTP_METHODS if callable(getattr(endpoint, m.lower(), None))]
        chosen = (method or (handlers[0] if handlers else "GET")).upper()
        methods = (chosen,) if method else tuple(handlers)
        endpoint = getattr(endpoint, chosen.lower(), None)
    described = getattr(endpoint, DESCRIPTION_ATTRIBUTE, None)
    guard = getattr(endpoint, GUARD_ATTRIBUTE, None)
    desc: Mapping[str, Any] = described if isinstance(described, Mapping) else {}
    marks: Mapping[str, Any] = guard if isinstance(guard, Mapping) else {}
    first, rest = _docstring(endpoint)
    known = {
        "summary",
        "body",
        "response",
        "status",
        "query",
        "responses",
        "tags",
        "public",
        "media_type",
        "body_media_type",
        "rate_limited",
    }
    return RouteSpec(
        path=path,
        methods=methods,
        name=name,
        summary=desc.get("summary") or first,
        description=rest,
        body=desc.get("body"),
        response=desc.get("response"),
        status=int(desc.get("status", 200)),
        query=desc.get("query"),
        responses={int(k): str(v) for k, v in dict(desc.get("responses") or {}).items()},
        tags=tuple(desc.get("tags") or ()),
        public=bool(desc.get("public", False)) and not marks.get("auth"),
        authenticated=bool(marks.get("auth")),
        permissions=tuple(marks.get("permissions", ())),
        any_of=bool(marks.get("any_of", False)),
        roles=tuple(marks.get("roles", ())),
        media_type=desc.get("media_type"),
        body_media_type=desc.get("body_media_type"),
        rate_limited=bool(desc.get("rate_limited", True)),
        described=bool(desc),
        extra={k: v for k, v in desc.items() if k not in known},
    )


class RouteEntry(NamedTuple):
    """One route (one handler of an ``HTTPEndpoint``) with its full path."""

    path: str
    methods: tuple[str, ...]
    spec: RouteSpec
    route: Route


def walk_routes(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[RouteEntry]:
    """Every ``Route`` below ``routes`` (through ``Mount``), with its full path and contract.

    An ``HTTPEndpoint`` class yields one entry per handler method.
    """
    for route in routes:
        if isinstance(route, Mount):
            yield from walk_routes(route.routes or (), prefix + route.path)
        elif isinstance(route, Route):
            endpoint = _unwrap(route.endpoint)
            if inspect.isclass(endpoint):
                for method in _HTTP_METHODS:
                    if method != "HEAD" and callable(getattr(endpoint, method.lower(), None)):
                        spec = route_spec(route, method)
                        yield RouteEntry(prefix + route.path, (method,), spec, route)
            else:
                spec = route_spec(route)
                yield RouteEntry(prefix + route.path, spec.methods or ("GET", "HEAD"), spec, route)


def check_routes(routes: Iterable[BaseRoute], registry: Container[str]) -> None:
    """Refuse to start when a route requires a permission ``registry`` does not know.

    Raises:
        ConfigurationError: naming every unknown permission.
    """
    unknown = {p for entry in walk_routes(routes) for p in entry.spec.permissions if p not in registry}
    if unknown:
        raise ConfigurationError(f"routes require unregistered permissions: {sorted(unknown)}")


def plain_path(path: str) -> str:
    """``/users/{user_id:uuid}`` as clients write it: ``/users/{user_id}`` (converters dropped)."""
    return _CONVERTED.sub(r"{\1}", path)


_CONVERTED = re.compile(r"\{(\w+):\w+\}")


def public_paths(routes: Iterable[BaseRoute]) -> frozenset[str]:
    """Full paths of the routes declared ``public=True`` (login, register, health...)."""
    return frozenset(entry.path for entry in walk_routes(routes) if entry.spec.public)


_PARAM = re.compile(r"\{[^}]+\}")


class RouteTable:
    """The application's routes by path, to classify a request by the route it reaches.

    Built once per application. A tenant path prefix (``/t/{slug}``) is taken off
    before matching, so a route is the same route whatever prefix reached it.

    Args:
        routes: The application's routes.
        tenant_prefix: The path prefix naming a tenant (``"/t/"``), or ``None``.
    """

    def __init__(self, routes: Iterable[BaseRoute], *, tenant_prefix: str | None = None) -> None:
        self.exact: dict[str, list[RouteEntry]] = {}
        self.patterns: list[tuple[re.Pattern[str], RouteEntry]] = []
        for entry in walk_routes(routes):
            if _PARAM.search(entry.path):
                self.patterns.append((compile_path(entry.path)[0], entry))
            else:
                self.exact.setdefault(entry.path, []).append(entry)
        self.tenant_prefix = "/" + tenant_prefix.strip("/") + "/" if tenant_prefix else None

    def route_path(self, scope: Scope) -> str:
        """The request's path as the routes see it: without ``root_path`` and the tenant prefix."""
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        if self.tenant_prefix and path.startswith(self.tenant_prefix):
            _, slash, rest = path[len(self.tenant_prefix) :].partition("/")
            path = slash + rest if slash else "/"
        return path

    def match(self, path: str, method: str) -> RouteEntry | None:
        """The entry answering ``method`` on ``path`` (``None`` when no route does)."""
        method = method.upper()
        candidates = self.exact.get(path)
        if candidates is None:
            candidates = [entry for pattern, entry in self.patterns if pattern.match(path)]
        for entry in candidates:
            if method in entry.methods:
                return entry
        return None


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route accepts on the request's path (for a true ``Allow`` header)."""
    found: set[str] = set()

    def visit(items: Iterable[BaseRoute], current: Scope) -> None:
        for route in items:
            match, child = route.matches(current)
            if match == Match.NONE:
                continue
            if isinstance(route, Mount):
                visit(route.routes or (), {**current, **child})
            elif isinstance(route, Route):
                endpoint = _unwrap(route.endpoint)
                if inspect.isclass(endpoint):
                    found.update(m for m in _HTTP_METHODS if callable(getattr(endpoint, m.lower(), None)))
                    if "GET" in found:
                        found.add("HEAD")
                else:
                    found.update(route.methods or ())

    visit(routes, scope)
    return sorted(found)


def _first_segment(route: BaseRoute) -> str | None:
    """The literal first path segment every path ``route`` can match starts with (``None``: any)."""
    if isinstance(route, Route | WebSocketRoute) or (isinstance(route, Mount) and route.path):
        segment = route.path[1:].partition("/")[0]
    else:  # a Mount at the root, a Host, anything else: may match any path
        return None
    return None if "{" in segment else segment


class RouteDispatch:
    """A router's routes precompiled: Starlette's matching, tried only where it can match.

    Starlette's router asks every route in turn whether it matches. This keeps
    its rules (the first full match wins, else the first partial match, which is
    how a wrong method becomes a 405; ``Mount``, path parameters, ``url_for``,
    the redirect of a missing or extra trailing slash, the 404 all unchanged)
    but asks only the routes that can match the path, in their order:

    - a path some route spells out in full (``/auth/me``) goes straight to the
      routes whose pattern matches it, found when the table is built;
    - any other path to the routes whose first segment is the path's first
      segment, plus those that may match anything (a first segment with a
      parameter, a root ``Mount``, a ``Host``).

    When none matches, the router itself answers (trailing-slash redirect, 404).
    Rebuilt when routes are added to the router afterwards.

    Args:
        router: The router (``app.router``) whose routes to dispatch.
    """

    def __init__(self, router: Router) -> None:
        self.router = router
        self._build()

    def _build(self) -> None:
        routes = list(self.router.routes)
        self._count = len(routes)
        firsts = [_first_segment(route) for route in routes]
        anywhere = [route for route, first in zip(routes, firsts, strict=True) if first is None]
        self._buckets: dict[str, list[BaseRoute]] = {}
        for first in {f for f in firsts if f is not None}:
            self._buckets[first] = [r for r, f in zip(routes, firsts, strict=True) if f is None or f == first]
        self._anywhere = anywhere
        self._exact: dict[str, list[BaseRoute]] = {}
        for route in routes:
            if isinstance(route, Route | WebSocketRoute) and "{" not in route.path:
                path = route.path
                bucket = self._buckets.get(path[1:].partition("/")[0], anywhere)
                self._exact[path] = [r for r in bucket if _may_match(r, path)]

    def candidates(self, route_path: str) -> list[BaseRoute]:
        """The routes that may match ``route_path``, in the router's order."""
        exact = self._exact.get(route_path)
        if exact is not None:
            return exact
        return self._buckets.get(route_path[1:].partition("/")[0], self._anywhere)

    def select(self, scope: Scope) -> tuple[BaseRoute | None, Scope]:
        """The route Starlette's router would hand ``scope`` to and its child scope (``None``: no match)."""
        if len(self.router.routes) != self._count:
            self._build()
        partial: BaseRoute | None = None
        partial_scope: Scope = {}
        for route in self.candidates(get_route_path(scope)):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                return route, child_scope
            if match is Match.PARTIAL and partial is None:
                partial, partial_scope = route, child_scope
        return partial, partial_scope

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.router.app(scope, receive, send)
            return
        route, child_scope = self.select(scope)
        if route is None:  # the router's own answer: a trailing-slash redirect or 404
            await self.router.app(scope, receive, send)
            return
        if "router" not in scope:
            scope["router"] = self.router
        scope["route"] = route
        scope.update(child_scope)
        await route.handle(scope, receive, send)


def _may_match(route: BaseRoute, path: str) -> bool:
    regex = getattr(route, "path_regex", None)
    return regex is None or regex.match(path) is not None


def compile_router(router: Router) -> RouteDispatch:
    """Dispatch ``router``'s requests through a :class:`RouteDispatch` (once its routes are in place).

    Installed by :meth:`tenantkit.TenantKit.build_app`; a router with router-level
    middleware keeps its own matching.
    """
    dispatch = RouteDispatch(router)
    if router.middleware_stack == router.app:
        router.middleware_stack = dispatch
    return dispatch
