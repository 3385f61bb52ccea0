"""Plugin manager factory and the helper that awaits async event hooks."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Iterable
from typing import Any

import pluggy

from tenantkit.plugins import hookspecs
from tenantkit.plugins.markers import PROJECT_NAME, hookimpl, hookspec

__all__ = [
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "call_event",
    "create_plugin_manager",
    "hookimpl",
    "hookspec",
]

ENTRY_POINT_GROUP = "tenantkit"
DISABLE_AUTOLOAD_ENV = "TENANTKIT_DISABLE_PLUGIN_AUTOLOAD"

logger = logging.getLogger("tenantkit.plugins")


def create_plugin_manager(
    plugins: Iterable[object] = (), *, autoload: bool | None = None
) -> pluggy.PluginManager:
    """Build a plugin manager with tenantkit's hookspecs.

    Args:
        plugins: Plugin objects or modules to register, in order.
        autoload: Load the ``tenantkit`` entry-point group. Defaults to true
            unless ``TENANTKIT_DISABLE_PLUGIN_AUTOLOAD`` is set.
    """
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    if autoload is None:
        autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    if autoload:
        count = manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        if count:
            logger.info("loaded %d plugin(s) from entry points", count)
    for plugin in plugins:
        if not manager.is_registered(plugin):
            manager.register(plugin)
    manager.check_pending()
    return manager


async def call_event(hook: pluggy.HookCaller, /, **kwargs: Any) -> list[Any]:
    """Call an event hook and await every awaitable result, in order.

    A failing plugin is logged and does not break the caller: events report
    what already happened.
    """
    try:
        results = hook(**kwargs)
    except Exception:
        logger.exception("plugin hook %s failed", hook.name)
        return []
    out = []
    for result in results:
        if inspect.isawaitable(result):
            try:
                result = await result
            except Exception:
                logger.exception("plugin hook %s failed", hook.name)
                continue
        out.append(result)
    return out
