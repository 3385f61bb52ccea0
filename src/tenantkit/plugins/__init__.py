"""Pluggy plugin system: hook markers, specifications and the manager factory."""

from __future__ import annotations

from tenantkit.plugins.manager import (
    ENTRY_POINT_GROUP,
    PROJECT_NAME,
    call_event,
    create_plugin_manager,
    hookimpl,
    hookspec,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "call_event",
    "create_plugin_manager",
    "hookimpl",
    "hookspec",
]
