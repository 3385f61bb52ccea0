"""tenantkit's pytest plugin: test that your app keeps its tenants apart.

Loaded by the ``pytest11`` entry point (or ``-p tenantkit.testing``); it only
adds options and opt-in fixtures, so tests that use none of them run exactly
as before. See the "Test your app's isolation" guide.

Example:
    ```python
    async def test_tenants_are_isolated(tenantkit_isolation):
        report = await tenantkit_isolation.check()
        report.assert_clean()
    ```
"""

from __future__ import annotations

from tenantkit.testing.bodies import example_body
from tenantkit.testing.isolation import IsolationReport, Leak, TenantUser, check_isolation, register_tenant
from tenantkit.testing.plugin import (
    IsolationKit,
    TenantPair,
    pytest_addoption,
    tenantkit_app,
    tenantkit_app_factory,
    tenantkit_client,
    tenantkit_database_url,
    tenantkit_isolation,
    tenantkit_settings,
    tenantkit_tenants,
)

__all__ = [
    "IsolationKit",
    "IsolationReport",
    "Leak",
    "TenantPair",
    "TenantUser",
    "check_isolation",
    "example_body",
    "pytest_addoption",
    "register_tenant",
    "tenantkit_app",
    "tenantkit_app_factory",
    "tenantkit_client",
    "tenantkit_database_url",
    "tenantkit_isolation",
    "tenantkit_settings",
    "tenantkit_tenants",
]
