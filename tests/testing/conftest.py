"""The plugin's fixtures, also when pytest runs without ``-p tenantkit.testing``.

Once the ``pytest11`` entry point is installed the plugin loads by itself and
these imports are the same fixtures again (a conftest fixture shadows a plugin's).
"""

from __future__ import annotations

from tenantkit.testing import (  # noqa: F401
    tenantkit_app,
    tenantkit_app_factory,
    tenantkit_client,
    tenantkit_database_url,
    tenantkit_isolation,
    tenantkit_settings,
    tenantkit_tenants,
)
