"""Path-prefix matching shared by the security middleware."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["PathPrefixes"]


class PathPrefixes:
    """Paths equal to, or below, any of some prefixes.

    ``/auth`` matches ``/auth`` and ``/auth/login``, never ``/authority``.
    Built once; a membership test is a set lookup plus one ``startswith``.
    """

    __slots__ = ("_below", "_exact", "prefixes")

    def __init__(self, prefixes: Iterable[str]) -> None:
        self.prefixes = tuple(p.rstrip("/") for p in prefixes)
        self._exact = frozenset(self.prefixes)
        self._below = tuple(p + "/" for p in self.prefixes)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and (path in self._exact or path.startswith(self._below))
