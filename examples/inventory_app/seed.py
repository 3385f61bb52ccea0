"""Demo data: two brands, an ADMIN and a USER each, a few products with stock."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select

from inventory_app.models import Product, StockMovement
from tenantkit import TenantKit, tenant_context
from tenantkit.admin import create_tenant, create_user
from tenantkit.db.models import Tenant

__all__ = ["DEMO_BRANDS", "DEMO_PASSWORD", "DemoLogin", "demo_logins", "has_tenants", "seed"]

DEMO_PASSWORD = "demo-password"
DEMO_BRANDS = {"acme": "Acme", "globex": "Globex"}
DEMO_PRODUCTS = (
    ("TSHIRT-BLK", "Black T-shirt", "19.99", 40),
    ("MUG-LOGO", "Logo mug", "9.50", 12),
    ("CAP-RED", "Red cap", "14.00", 4),
)


@dataclass(frozen=True, slots=True)
class DemoLogin:
    """One demo account."""

    brand: str
    role: str
    email: str
    password: str = DEMO_PASSWORD


def demo_logins() -> list[DemoLogin]:
    """The demo accounts ``seed`` creates."""
    return [
        DemoLogin(slug, role, f"{role.lower()}@{slug}.example.com")
        for slug in DEMO_BRANDS
        for role in ("ADMIN", "USER")
    ]


async def has_tenants(kit: TenantKit) -> bool:
    """Whether the database holds any tenant yet."""
    async with kit.database.session() as session:
        return bool(await session.scalar(select(func.count()).select_from(Tenant)))


async def seed(kit: TenantKit) -> list[DemoLogin]:
    """Add the demo brands, accounts and products (idempotent); the kit must be started."""
    for slug, name in DEMO_BRANDS.items():
        brand = await kit.directory.find(slug) or await create_tenant(kit, name, slug)
        for login in demo_logins():
            if login.brand == slug:
                await create_user(kit, login.email, login.password, tenant=brand, role=login.role)
        with tenant_context(brand):
            async with kit.database.session() as session, session.begin():
                existing = set(await session.scalars(select(Product.sku)))
                for sku, title, price, stock in DEMO_PRODUCTS:
                    if sku in existing:
                        continue
                    product = Product(sku=sku, name=title, price=Decimal(price), stock=stock)
                    session.add(product)
                    await session.flush()
                    session.add(
                        StockMovement(
                            product_id=product.id, delta=stock, reason="initial stock", stock_after=stock
                        )
                    )
    return demo_logins()
