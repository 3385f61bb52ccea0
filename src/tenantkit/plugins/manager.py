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
    "PluginManager",
    "call_event",
    "create_plugin_manager",
    "hookimpl",
    "hookspec",
]

ENTRY_POINT_GROUP = "tenantkit"
DISABLE_AUTOLOAD_ENV = "TENANTKIT_DISABLE_PLUGIN_AUTOLOAD"

logger = logging.getLogger("tenantkit.plugins")


def is_event_hook(name: str) -> bool:
    """Event hooks (``tenantkit_on_*``) report what happened and may be ``async def``; others may not."""
    return name.startswith("tenantkit_on_")


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, refusing ``async def`` implementations of synchronous hooks.

    pluggy does not await: an async implementation of a hook whose result
    tenantkit uses at once (claims, tenant resolution, authorization...) would
    return a coroutine that is silently dropped, or win every ``firstresult``
    call. Such a plugin fails loudly at registration instead.
    """

    def register(self, plugin: object, name: str | None = None) -> str | None:
        registered = super().register(plugin, name)
        for caller in self.get_hookcallers(plugin) or ():
            if is_event_hook(caller.name):
                continue
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and _is_async(impl.function):
                    self.unregister(plugin)
                    raise pluggy.PluginValidationError(
                        plugin,
                        f"{impl.plugin_name}: {caller.name} is synchronous (its result is used at once); "
                        "implement it with 'def', not 'async def'",
                    )
        return registered


def _is_async(function: Any) -> bool:
    return inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)


def create_plugin_manager(
    plugins: Iterable[object] = (), *, autoload: bool | None = None
) -> pluggy.PluginManager:
    """Build a plugin manager with tenantkit's hookspecs.

    Args:
        plugins: Plugin objects or modules to register, in order.
        autoload: Load the ``tenantkit`` entry-point group. Defaults to true
            unless ``TENANTKIT_DISABLE_PLUGIN_AUTOLOAD`` is set.
    """
    manager = PluginManager(PROJECT_NAME)
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
