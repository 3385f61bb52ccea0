"""The permission registry: every ``resource.action`` code an app or plugin defines."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

from tenantkit.errors import ConfigurationError

__all__ = ["FRAMEWORK_PERMISSIONS", "PERMISSION_PATTERN", "PLATFORM_PERMISSIONS", "PermissionRegistry"]

_CODE = re.compile(r"^[a-z][a-z0-9_-]*\.[a-z][a-z0-9_-]*$")
#: A permission pattern: ``products.read``, ``products.*`` or ``*``.
PERMISSION_PATTERN = r"^(\*|[a-z][a-z0-9_-]*\.(\*|[a-z][a-z0-9_-]*))$"
_PATTERN = re.compile(PERMISSION_PATTERN)

FRAMEWORK_PERMISSIONS: dict[str, str] = {
    "users.read": "List the members of the tenant",
    "users.invite": "Invite people to the tenant",
    "users.update": "Change members' roles",
    "users.delete": "Remove members from the tenant",
    "roles.manage": "Create, change and delete the tenant's roles",
    "audit.read": "Read the tenant's audit log",
    "jobs.manage": "List and requeue the tenant's dead-lettered jobs",
    "tenant.manage": "Rename the tenant and require two-factor sign-in of its members",
    "api_keys.manage": "Create, list and revoke the tenant's API keys",
    "users.impersonate": "Act as a member of lower role for a while, with a reason (audited)",
}

PLATFORM_PERMISSIONS: dict[str, str] = {
    "tenants.manage": "List tenants and suspend or reactivate them (platform operators)",
}


class PermissionRegistry:
    """Known permission codes with descriptions."""

    def __init__(self) -> None:
        self._codes: dict[str, str] = {}
        self._frozen: tuple[frozenset[str], frozenset[str]] | None = None
        self._expanded: dict[tuple[tuple[str, ...], frozenset[str]], frozenset[str]] = {}
        self.platform: frozenset[str] = frozenset(PLATFORM_PERMISSIONS)
        self.register_many(FRAMEWORK_PERMISSIONS.items())
        self.register_many(PLATFORM_PERMISSIONS.items())

    def register(self, code: str, description: str = "") -> None:
        """Add a permission; codes are ``resource.action`` in lower case."""
        if not _CODE.match(code):
            raise ConfigurationError(f"permission {code!r} is not 'resource.action'")
        self._codes.setdefault(code, description)
        self._frozen = None

    def register_many(self, items: Iterable[tuple[str, str]]) -> None:
        for code, description in items:
            self.register(code, description)

    def __contains__(self, code: object) -> bool:
        return code in self._codes

    def _sets(self) -> tuple[frozenset[str], frozenset[str]]:
        if self._frozen is None:
            codes = frozenset(self._codes)
            self._frozen = (codes, frozenset(c for c in codes if c not in self.platform))
        return self._frozen

    @property
    def codes(self) -> frozenset[str]:
        return self._sets()[0]

    @property
    def tenant_codes(self) -> frozenset[str]:
        """Every permission a tenant role may hold (platform ones excluded)."""
        return self._sets()[1]

    def describe(self) -> dict[str, str]:
        return dict(sorted(self._codes.items()))

    @staticmethod
    def valid_pattern(pattern: str) -> bool:
        """``products.read``, ``products.*`` or ``*``."""
        return bool(_PATTERN.match(pattern))

    def expand(self, patterns: Iterable[str], *, universe: frozenset[str] | None = None) -> frozenset[str]:
        """Concrete codes matched by ``patterns`` (wildcards expanded; memoised per pattern set)."""
        pool = universe if universe is not None else self.tenant_codes
        key = (tuple(patterns), pool)
        found = self._expanded.get(key)
        if found is None:
            if len(self._expanded) >= 4096:
                self._expanded.clear()
            found = self._expanded[key] = self._expand(key[0], pool)
        return found

    @staticmethod
    def _expand(patterns: tuple[str, ...], pool: frozenset[str]) -> frozenset[str]:
        result: set[str] = set()
        for pattern in patterns:
            if "*" in pattern:
                result.update(c for c in pool if fnmatch.fnmatchcase(c, pattern))
            elif pattern in pool:
                result.add(pattern)
        return frozenset(result)
