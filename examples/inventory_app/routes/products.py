"""``/products``: the brand's catalogue."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, func, or_, select
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import Response

from inventory_app.models import Product, StockMovement
from inventory_app.routes.common import (
    decode_cursor,
    encode_cursor,
    iso,
    kit_of,
    money,
    paginate,
    parse_query,
    path_id,
    principal_id,
)
from inventory_app.schemas import ListQuery, ProductIn, ProductList, ProductOut, ProductPatch
from tenantkit import ConflictError, NotFoundError, ValidationError, json_response, parse_body
from tenantkit.openapi import describe
from tenantkit.rbac import requires_permissions
from tenantkit.tenancy import ScopedRead, scoped_get

__all__ = [
    "create_product",
    "delete_product",
    "get_product",
    "list_products",
    "product_to_dict",
    "update_product",
]

DUPLICATE_SKU = "A product with this SKU already exists in this brand."
TAGS = ["products"]


_FIELDS = (
    "id",
    "sku",
    "name",
    "description",
    "price",
    "stock",
    "low_stock_threshold",
    "created_at",
    "updated_at",
)


def product_to_dict(product: Product | Mapping[str, Any]) -> dict[str, Any]:
    """The JSON shape of a product (an ORM object or a row of its columns)."""
    row = product if isinstance(product, Mapping) else {name: getattr(product, name) for name in _FIELDS}
    return {
        "id": str(row["id"]),
        "sku": row["sku"],
        "name": row["name"],
        "description": row["description"],
        "price": money(row["price"]),
        "stock": row["stock"],
        "low_stock_threshold": row["low_stock_threshold"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def _page_statements() -> tuple[ScopedRead, ScopedRead]:
    """The unfiltered list's page, first and after a cursor: prebuilt, run without the ORM (the hot path)."""
    table = cast("Table", Product.__table__)
    first = (
        select(*(table.c[name] for name in _FIELDS))
        .where(table.c.tenant_id == bindparam("tenant_id"))
        .order_by(table.c.created_at, table.c.id)
        .limit(bindparam("limit"))
    )
    after_created, after_id = (
        bindparam("after_created", type_=table.c.created_at.type),
        bindparam("after_id", type_=table.c.id.type),
    )
    after = first.where(
        or_(
            table.c.created_at > after_created,
            and_(table.c.created_at == after_created, table.c.id > after_id),
        )
    )
    return ScopedRead(first), ScopedRead(after)


_FIRST_PAGE, _NEXT_PAGE = _page_statements()


async def _page(request: Request, query: Any) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the unfiltered list in ``(created_at, id)`` order, and the next page's cursor."""
    params: dict[str, Any] = {"limit": query.limit + 1}
    read = _FIRST_PAGE
    if query.cursor:
        params["after_created"], params["after_id"] = decode_cursor(query.cursor)
        read = _NEXT_PAGE
    rows = await read.rows(kit_of(request).database, params)
    next_cursor = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"])
    return [product_to_dict(row) for row in rows], next_cursor


@describe(summary="List products", query=ListQuery, response=ProductList, tags=TAGS)
@requires_permissions("products.read")
async def list_products(request: Request) -> Response:
    """A page of products, oldest first; ``q`` searches name and SKU (case-insensitive)."""
    query = parse_query(request)
    if not query.q:
        items, next_cursor = await _page(request, query)
        return json_response({"items": items, "next_cursor": next_cursor})
    statement = select(Product)
    if query.q:
        needle = query.q.strip().lower()
        statement = statement.where(
            or_(
                func.lower(Product.name).contains(needle, autoescape=True),
                func.lower(Product.sku).contains(needle, autoescape=True),
            )
        )
    async with kit_of(request).database.read_session() as session:
        products, next_cursor = await paginate(session, statement, Product, query)
    return json_response({"items": [product_to_dict(p) for p in products], "next_cursor": next_cursor})


@describe(
    summary="Create a product",
    body=ProductIn,
    response=ProductOut,
    status=201,
    responses={409: "duplicate SKU in this brand"},
    tags=TAGS,
)
@requires_permissions("products.create")
async def create_product(request: Request) -> Response:
    """Create a product; an initial ``stock`` is recorded in the ledger."""
    body = await parse_body(request, ProductIn)
    product = Product(
        sku=body.sku,
        name=body.name,
        description=body.description,
        price=body.price,
        stock=body.stock,
        low_stock_threshold=body.low_stock_threshold,
    )
    async with kit_of(request).database.session() as session:
        try:
            async with session.begin():
                session.add(product)
                await session.flush()
                if body.stock:
                    session.add(
                        StockMovement(
                            product_id=product.id,
                            delta=body.stock,
                            reason="initial stock",
                            stock_after=body.stock,
                            actor_id=principal_id(),
                        )
                    )
        except IntegrityError:
            raise ConflictError(DUPLICATE_SKU) from None
    return json_response(product_to_dict(product), 201)


@describe(summary="Get a product", response=ProductOut, tags=TAGS)
@requires_permissions("products.read")
async def get_product(request: Request) -> Response:
    """One product of the brand (404 for another brand's)."""
    product_id = path_id(request, what="Product")
    async with kit_of(request).database.read_session() as session:
        product = await scoped_get(session, Product, product_id)
    if product is None:
        raise NotFoundError("Product not found.")
    return json_response(product_to_dict(product))


@describe(
    summary="Update a product",
    body=ProductPatch,
    response=ProductOut,
    responses={409: "duplicate SKU in this brand"},
    tags=TAGS,
)
@requires_permissions("products.update")
async def update_product(request: Request) -> Response:
    """Change any of ``sku``, ``name``, ``description``, ``price``, ``low_stock_threshold``."""
    product_id = path_id(request, what="Product")
    body = await parse_body(request, ProductPatch)
    changes = body.model_dump(exclude_unset=True)
    nulls = [name for name, value in changes.items() if value is None]
    if nulls:
        raise ValidationError(
            [
                {"loc": ["body", name], "msg": "Field may not be null", "type": "null_not_allowed"}
                for name in nulls
            ]
        )
    async with kit_of(request).database.session() as session:
        try:
            async with session.begin():
                product = await scoped_get(session, Product, product_id)
                if product is None:
                    raise NotFoundError("Product not found.")
                for name, value in changes.items():
                    setattr(product, name, value)
                await session.flush()
        except IntegrityError:
            raise ConflictError(DUPLICATE_SKU) from None
        await session.refresh(product)
    return json_response(product_to_dict(product))


@describe(summary="Delete a product", status=204, tags=TAGS)
@requires_permissions("products.delete")
async def delete_product(request: Request) -> Response:
    """Delete a product and its stock ledger; orders keep their snapshot of it."""
    product_id = path_id(request, what="Product")
    async with kit_of(request).database.session() as session, session.begin():
        result = await session.execute(
            delete(Product).where(Product.id == product_id).execution_options(synchronize_session=False)
        )
    if not isinstance(result, CursorResult) or result.rowcount != 1:
        raise NotFoundError("Product not found.")
    return Response(status_code=204)
