"""The tenant administration console: a small single-page app served from the package.

Mount :func:`console_routes` (the kit does, at ``Settings.console_path``); plugins
add panels with the ``tenantkit_console_panels`` hook.
"""

from tenantkit.console.routes import (
    CONSOLE_CSP,
    STATIC_DIRECTORY,
    ConsolePanel,
    console_routes,
    panels_from_hook,
)

__all__ = ["CONSOLE_CSP", "STATIC_DIRECTORY", "ConsolePanel", "console_routes", "panels_from_hook"]
