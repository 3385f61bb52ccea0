"""The app's routes, grouped by resource."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from inventory_app.routes import files, inventory, orders, products
from tenantkit import TenantKit
from tenantkit.rbac import requires_permissions
from tenantkit.webhooks import webhook_routes

__all__ = ["routes"]


def routes(kit: TenantKit) -> list[BaseRoute]:
    """Every route of the inventory API (tenantkit's own are added by ``kit.build_app``)."""
    return [
        Route("/products", products.list_products, methods=["GET"]),
        Route("/products", products.create_product, methods=["POST"]),
        Route("/products/{id}", products.get_product, methods=["GET"]),
        Route("/products/{id}", products.update_product, methods=["PATCH"]),
        Route("/products/{id}", products.delete_product, methods=["DELETE"]),
        Route("/inventory", inventory.list_inventory, methods=["GET"]),
        Route("/inventory/{product_id}/adjustments", inventory.adjust_stock, methods=["POST"]),
        Route("/orders", orders.list_orders, methods=["GET"]),
        Route("/orders", orders.create_order, methods=["POST"]),
        Route("/orders/{id}", orders.get_order, methods=["GET"]),
        Route(
            "/files/uploads",
            files.upload_endpoint(kit.files.allowed_types, kit.files.max_size),
            methods=["POST"],
        ),
        Route("/files/{id:uuid}/complete", files.complete_upload, methods=["POST"]),
        Route("/files/{id:uuid}", files.get_file, methods=["GET"]),
        *webhook_routes(kit.webhooks, decorate=requires_permissions("webhooks.manage")),
    ]
