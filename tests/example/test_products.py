"""``/products``: CRUD, validation, pagination, search, isolation between brands."""

from __future__ import annotations

import uuid

from tests.example.conftest import Brand, Example
from tests.helpers import assert_problem


async def test_create_get_update_delete(example: Example, acme: Brand) -> None:
    created = await example.product(acme, sku="W-1", name="Widget", price="19.99", description="Blue")
    assert created["price"] == "19.99"
    assert created["stock"] == 0
    assert created["low_stock_threshold"] == 5
    assert created["created_at"].endswith("+00:00")
    uuid.UUID(created["id"])

    got = await example.client.get(f"/products/{created['id']}", headers=acme.user)
    assert got.status_code == 200
    assert got.json() == created

    patched = await example.client.patch(
        f"/products/{created['id']}", json={"price": 5, "name": "Widget 2"}, headers=acme.admin
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["price"] == "5.00"
    assert patched.json()["name"] == "Widget 2"
    assert patched.json()["sku"] == "W-1"

    deleted = await example.client.delete(f"/products/{created['id']}", headers=acme.admin)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(await example.client.get(f"/products/{created['id']}", headers=acme.admin), 404)
    assert_problem(await example.client.delete(f"/products/{created['id']}", headers=acme.admin), 404)


async def test_price_accepts_numbers_and_strings_and_rejects_bad_values(
    example: Example, acme: Brand
) -> None:
    assert (await example.product(acme, sku="A", price=19.9))["price"] == "19.90"
    assert (await example.product(acme, sku="B", price="0"))["price"] == "0.00"
    assert (await example.product(acme, sku="C", price=7))["price"] == "7.00"
    for bad in ("-1", "1.999", "abc", True, None, "NaN", "1e20"):
        response = await example.client.post(
            "/products", json={"sku": "X", "name": "X", "price": bad}, headers=acme.admin
        )
        body = assert_problem(response, 422)
        assert body["errors"][0]["loc"] == ["body", "price"], (bad, body)


async def test_validation_lists_every_field_and_rejects_unknown_ones(example: Example, acme: Brand) -> None:
    response = await example.client.post("/products", json={"name": "", "colour": "red"}, headers=acme.admin)
    body = assert_problem(response, 422)
    locs = {tuple(error["loc"]) for error in body["errors"]}
    assert {("body", "sku"), ("body", "name"), ("body", "price"), ("body", "colour")} <= locs
    assert_problem(await example.client.post("/products", content=b"{", headers=acme.admin), 415)
    bad_json = await example.client.post(
        "/products", content=b"{", headers={**acme.admin, "Content-Type": "application/json"}
    )
    assert_problem(bad_json, 400)


async def test_duplicate_sku_is_409_within_a_brand_but_fine_across_brands(
    example: Example, acme: Brand, globex: Brand
) -> None:
    first = await example.product(acme, sku="DUP")
    assert_problem(
        await example.client.post(
            "/products", json={"sku": "DUP", "name": "Again", "price": "1"}, headers=acme.admin
        ),
        409,
    )
    await example.product(globex, sku="DUP")
    other = await example.product(acme, sku="OTHER")
    renamed = await example.client.patch(f"/products/{other['id']}", json={"sku": "DUP"}, headers=acme.admin)
    assert_problem(renamed, 409)
    assert (await example.client.get(f"/products/{first['id']}", headers=acme.admin)).json()["sku"] == "DUP"


async def test_patch_rejects_null_and_unknown_fields(example: Example, acme: Brand) -> None:
    product = await example.product(acme)
    response = await example.client.patch(
        f"/products/{product['id']}", json={"name": None, "stock": 3}, headers=acme.admin
    )
    body = assert_problem(response, 422)
    assert {tuple(e["loc"]) for e in body["errors"]} == {("body", "stock")}
    response = await example.client.patch(
        f"/products/{product['id']}", json={"name": None}, headers=acme.admin
    )
    assert assert_problem(response, 422)["errors"][0]["loc"] == ["body", "name"]


async def test_other_brands_products_are_invisible(example: Example, acme: Brand, globex: Brand) -> None:
    product = await example.product(acme)
    path = f"/products/{product['id']}"
    assert_problem(await example.client.get(path, headers=globex.admin), 404)
    assert_problem(await example.client.patch(path, json={"name": "Hijack"}, headers=globex.admin), 404)
    assert_problem(await example.client.delete(path, headers=globex.admin), 404)
    assert (await example.client.get("/products", headers=globex.admin)).json() == {
        "items": [],
        "next_cursor": None,
    }
    assert (await example.client.get(path, headers=acme.admin)).json()["name"] == "Widget"
    assert_problem(await example.client.get("/products/not-a-uuid", headers=acme.admin), 404)


async def test_auth_and_permissions(example: Example, acme: Brand) -> None:
    unauthenticated = await example.client.get("/products")
    assert_problem(unauthenticated, 401)
    assert unauthenticated.headers["www-authenticate"].startswith("Bearer")
    forbidden = await example.client.post(
        "/products", json={"sku": "U", "name": "U", "price": "1"}, headers=acme.user
    )
    assert_problem(forbidden, 403)
    product = await example.product(acme)
    assert_problem(
        await example.client.patch(f"/products/{product['id']}", json={"name": "x"}, headers=acme.user), 403
    )
    assert_problem(await example.client.delete(f"/products/{product['id']}", headers=acme.user), 403)
    assert (await example.client.get("/products", headers=acme.user)).status_code == 200


async def test_cursor_pagination_and_search(example: Example, acme: Brand) -> None:
    for n in range(5):
        await example.product(acme, sku=f"SKU-{n}", name=f"Gadget {n}" if n % 2 else f"Widget {n}")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await example.client.get("/products", params=params, headers=acme.user)).json()
        pages += 1
        seen += [item["sku"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [f"SKU-{n}" for n in range(5)]

    found = (await example.client.get("/products", params={"q": "gADGET"}, headers=acme.user)).json()
    assert sorted(item["sku"] for item in found["items"]) == ["SKU-1", "SKU-3"]
    by_sku = (await example.client.get("/products", params={"q": "sku-4"}, headers=acme.user)).json()
    assert [item["sku"] for item in by_sku["items"]] == ["SKU-4"]
    assert (await example.client.get("/products", params={"q": "%"}, headers=acme.user)).json()["items"] == []

    assert_problem(
        await example.client.get("/products", params={"cursor": "garbage!"}, headers=acme.user), 400
    )
    body = assert_problem(
        await example.client.get("/products", params={"limit": "0"}, headers=acme.user), 422
    )
    assert body["errors"][0]["loc"] == ["query", "limit"]
