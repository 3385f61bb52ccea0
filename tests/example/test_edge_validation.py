"""Input the database cannot hold is refused at the edge, on PostgreSQL as on SQLite (issue 17).

One test per finding of the review: NUL in ``tenant_name`` and ``sku``, an
unpaired surrogate, a total beyond the column's precision, malformed cursors
(garbage, and a well-formed one carrying a numeric id), plus the contract
fixes found by Schemathesis (empty ``X-Tenant-ID``, unknown query parameters,
a true ``Allow`` header, integral numbers).
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from datetime import UTC, datetime

import pytest

from inventory_app.models import Product
from tenantkit.db.engine import Database
from tenantkit.pagination import encode_cursor
from tests.example.conftest import Brand, Example
from tests.helpers import assert_problem


def _cursor(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _fields(response: object) -> list[list[object]]:
    body = assert_problem(response, 422)  # type: ignore[arg-type]
    return [error["loc"] for error in body["errors"]]  # type: ignore[attr-defined]


async def test_nul_in_the_unauthenticated_tenant_name_is_a_422(example: Example) -> None:
    response = await example.client.post(
        "/auth/register",
        json={"email": "nul@example.com", "password": "correct horse battery", "tenant_name": "Acme\u0000"},
    )
    assert _fields(response) == [["body", "tenant_name"]]


async def test_nul_in_a_sku_and_a_surrogate_in_a_name_are_422s_naming_them(
    example: Example, acme: Brand
) -> None:
    response = await example.client.post(
        "/products", json={"sku": "A\u0000B", "name": "ok", "price": "1.00"}, headers=acme.admin
    )
    assert _fields(response) == [["body", "sku"]]
    raw = '{"sku": "AB", "name": "bad \\ud800 name", "price": "1.00"}'
    response = await example.client.post(
        "/products", content=raw, headers={**acme.admin, "content-type": "application/json"}
    )
    assert _fields(response) == [["body", "name"]]
    product = await example.product(acme)
    patched = await example.client.patch(
        f"/products/{product['id']}", json={"description": "x\u0000"}, headers=acme.admin
    )
    assert _fields(patched) == [["body", "description"]]


async def test_nul_in_a_query_string_is_a_422(example: Example, acme: Brand) -> None:
    response = await example.client.get("/products", params={"q": "a\u0000"}, headers=acme.admin)
    assert _fields(response) == [["query", "q"]]


async def test_numbers_beyond_bigint_are_422s(example: Example, acme: Brand) -> None:
    product = await example.product(acme)
    huge = "1" + "0" * 30
    raw = json.dumps({"items": [{"product_id": product["id"], "quantity": 0}]}).replace(
        '"quantity": 0', f'"quantity": {huge}'
    )
    response = await example.client.post(
        "/orders", content=raw, headers={**acme.admin, "content-type": "application/json"}
    )
    assert _fields(response) == [["body", "items", 0, "quantity"]]


async def test_an_order_total_beyond_the_column_is_a_422_and_reserves_nothing(
    example: Example, acme: Brand
) -> None:
    product = await example.product(acme, price="9999999999.99", stock=1000)
    lines = [{"product_id": product["id"], "quantity": 2}]
    response = await example.client.post("/orders", json={"items": lines}, headers=acme.admin)
    assert _fields(response) == [["body", "items"]]
    after = await example.client.get(f"/products/{product['id']}", headers=acme.admin)
    assert after.json()["stock"] == 1000


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "0",
        _cursor(["2024-01-01T00:00:00+00:00", 12345]),
        _cursor(["2024-01-01T00:00:00+00:00", "12345"]),
        _cursor(["0001-01-01T00:00:00+01:00", "6c1f3a4e-0000-4000-8000-000000000001"]),
        _cursor({"a": 1}),
        "A" * 600,
        "a\u0000b",
    ],
)
async def test_malformed_cursors_are_400s(example: Example, acme: Brand, cursor: str) -> None:
    for path in ("/products", "/orders", "/inventory", "/audit"):
        response = await example.client.get(path, params={"cursor": cursor}, headers=acme.admin)
        assert_problem(response, 400)


async def test_a_cursor_from_the_codec_pages_on(example: Example, acme: Brand) -> None:
    cursor = encode_cursor(datetime.now(UTC), uuid.uuid4())
    response = await example.client.get("/products", params={"cursor": cursor}, headers=acme.admin)
    assert response.status_code == 200, response.text


async def test_unknown_query_parameters_are_refused(example: Example, acme: Brand) -> None:
    response = await example.client.get("/products", params={"sort": "name"}, headers=acme.admin)
    assert _fields(response) == [["query", "sort"]]


async def test_an_empty_tenant_header_is_a_400(example: Example, acme: Brand) -> None:
    response = await example.client.get("/products", headers={**acme.admin, "X-Tenant-ID": ""})
    assert_problem(response, 400)


async def test_integral_numbers_are_integers_and_strings_are_not(example: Example, acme: Brand) -> None:
    created = await example.client.post(
        "/products", json={"sku": "F-1", "name": "Float", "price": 1, "stock": 278671.0}, headers=acme.admin
    )
    assert created.status_code == 201, created.text
    assert created.json()["stock"] == 278671
    for stock in ("5", 1.5, True):
        refused = await example.client.post(
            "/products", json={"sku": "F-2", "name": "Float", "price": 1, "stock": stock}, headers=acme.admin
        )
        assert _fields(refused) == [["body", "stock"]]
    refused = await example.client.post(
        "/products", json={"sku": "F-3", "name": "x", "price": "1.001"}, headers=acme.admin
    )
    assert _fields(refused) == [["body", "price"]]


async def test_undeclared_methods_answer_405_with_every_accepted_method(
    example: Example, acme: Brand
) -> None:
    response = await example.client.put("/roles", headers=acme.admin)
    assert_problem(response, 405)
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    response = await example.client.request("OPTIONS", "/products", headers=acme.admin)
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}


async def test_a_failed_insert_does_not_log_its_parameters(
    example: Example, caplog: pytest.LogCaptureFixture
) -> None:
    database = Database(str(example.kit.database.url))
    secret = "whsec_" + uuid.uuid4().hex
    row = {"id": uuid.uuid4(), "tenant_id": uuid.uuid4(), "sku": secret, "name": secret, "price": 1}
    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(Exception) as failed:  # noqa: PT011
            async with database.session() as session, session.begin():
                session.add(Product(**row))  # no such tenant: the foreign key refuses it
    finally:
        await database.dispose()
    logging.getLogger("tenantkit.test").error("insert failed", exc_info=failed.value)
    assert secret not in str(failed.value)
    assert secret not in caplog.text
