"""A plugin installed through the ``tenantkit`` entry-point group (test fixture)."""

from __future__ import annotations

from typing import Any

import pluggy

hookimpl = pluggy.HookimplMarker("tenantkit")

configured: list[Any] = []


@hookimpl
def tenantkit_configure(kit: Any) -> None:
    configured.append(kit)


@hookimpl
def tenantkit_register_permissions() -> list[tuple[str, str]]:
    return [("sample.read", "Read samples (from the sample plugin)")]
