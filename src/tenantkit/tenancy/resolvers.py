"""Where a request names its tenant: header, subdomain, path prefix, token claim, plugin."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from starlette.requests import Request
from starlette.types import Scope

if TYPE_CHECKING:
    import pluggy

__all__ = [
    "HeaderTenantResolver",
    "PathTenantResolver",
    "PluginTenantResolver",
    "SubdomainTenantResolver",
    "TenantResolver",
    "TokenTenantResolver",
]


class TenantResolver(Protocol):
    """Returns a tenant identifier (id or slug) named by the request, or ``None``."""

    def __call__(self, scope: Scope) -> str | None: ...


class HeaderTenantResolver:
    """``X-Tenant-ID: <id or slug>`` (the header name is configurable)."""

    def __init__(self, header: str = "X-Tenant-ID") -> None:
        self.header = header.lower().encode("latin-1")

    def __call__(self, scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name == self.header:
                text = value.decode("latin-1").strip()
                return text or None
        return None


class SubdomainTenantResolver:
    """``acme.example.com`` → ``acme`` when the base domain is ``example.com``."""

    def __init__(self, base_domain: str) -> None:
        self.suffix = "." + base_domain.lower().lstrip(".")

    def __call__(self, scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1").lower().rsplit(":", 1)[0]
                if host.endswith(self.suffix):
                    label = host[: -len(self.suffix)]
                    return label if label and "." not in label else None
                return None
        return None


class PathTenantResolver:
    """``/t/acme/products`` → ``acme``; routes then match ``/products``.

    The prefix moves into ``root_path`` (``scope["path"]`` keeps the full path,
    as Starlette expects), so ``request.url`` and ``url_for`` still carry
    ``/t/acme``. Works under a mounted ``root_path`` too.
    """

    def __init__(self, prefix: str = "/t/") -> None:
        self.prefix = "/" + prefix.strip("/") + "/"

    def __call__(self, scope: Scope) -> str | None:
        path: str = scope["path"]
        root_path: str = scope.get("root_path", "")
        full = bool(root_path) and path.startswith(root_path)
        relative = path[len(root_path) :] if full else path
        if not relative.startswith(self.prefix):
            return None
        identifier, _, rest = relative[len(self.prefix) :].partition("/")
        if not identifier:
            return None
        scope["root_path"] = root_path + self.prefix + identifier
        if not full and root_path:  # a server that sends ``path`` without ``root_path``
            scope["path"] = "/" + rest
        return identifier


class TokenTenantResolver:
    """The ``tid`` claim of the verified access token."""

    def __call__(self, scope: Scope) -> str | None:
        principal = scope.get("state", {}).get("principal")
        return str(principal.claims.get("tid") or principal.tenant_id) if principal is not None else None


class PluginTenantResolver:
    """Asks the ``tenantkit_resolve_tenant`` hook (first non-None answer wins)."""

    def __init__(self, hook: pluggy.HookRelay) -> None:
        self.hook = hook

    def __call__(self, scope: Scope) -> str | None:
        result = self.hook.tenantkit_resolve_tenant(request=Request(scope))
        return str(result) if result else None


def build_resolvers(
    names: list[str],
    *,
    header: str,
    base_domain: str | None,
    path_prefix: str,
    hook: pluggy.HookRelay,
) -> list[TenantResolver]:
    """Resolvers in the configured order."""
    factories: dict[str, Callable[[], TenantResolver | None]] = {
        "header": lambda: HeaderTenantResolver(header),
        "subdomain": lambda: SubdomainTenantResolver(base_domain) if base_domain else None,
        "path": lambda: PathTenantResolver(path_prefix),
        "token": TokenTenantResolver,
        "plugin": lambda: PluginTenantResolver(hook),
    }
    resolvers = [factories[name]() for name in names]
    return [r for r in resolvers if r is not None]
