"""A small app for ``tenantkit --app tests.jobs.worker_app:create_app worker``.

The inventory app's kit plus one task, ``worker_test.record``: it counts the
products it can see (a ``TenantScoped`` query) and writes what it saw (tenant,
request id, count, process id) as a product of the job's tenant, so the test
reads it back from the database.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from inventory_app.app import create_kit
from inventory_app.models import Product
from tenantkit import Settings, TenantKit
from tenantkit.context import current_request_id, current_tenant

RECORD = "worker_test.record"
SEEN_PREFIX = "SEEN-"


def build_kit(settings: Settings | None = None, **options: Any) -> TenantKit:
    """The inventory kit with the ``worker_test.record`` task registered."""
    kit: TenantKit = create_kit(settings, **options)

    @kit.jobs.task(name=RECORD, max_attempts=1)
    async def record(marker: str) -> None:
        async with kit.database.session() as session, session.begin():
            visible = await session.scalar(select(func.count()).select_from(Product))
            tenant = current_tenant()
            seen = {
                "tenant_id": str(tenant.id) if tenant else None,
                "slug": tenant.slug if tenant else None,
                "request_id": current_request_id(),
                "visible_products": visible,
                "pid": os.getpid(),
            }
            session.add(
                Product(
                    sku=SEEN_PREFIX + marker, name="seen", price=Decimal("0"), description=json.dumps(seen)
                )
            )

    return kit


def create_app() -> TenantKit:
    """The CLI's factory: settings from the ``TENANTKIT_*`` environment."""
    return build_kit(Settings.load(), autoload_plugins=False)
