"""Files and webhook routes mounted by the app, and the USER role's exact permissions."""

from __future__ import annotations

from tests.example.conftest import Brand, Example
from tests.files.conftest import PNG
from tests.helpers import assert_problem


async def test_presigned_upload_complete_and_read(example: Example, acme: Brand, globex: Brand) -> None:
    announce = {
        "filename": "logo.png",
        "content_type": "image/png",
        "size": len(PNG),
        "visibility": "private",
    }
    assert_problem(await example.client.post("/files/uploads", json=announce, headers=acme.user), 403)
    created = await example.client.post("/files/uploads", json=announce, headers=acme.admin)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "pending"
    upload = body["upload"]
    assert upload["method"] == "PUT"
    put = await example.client.put(upload["url"], content=PNG, headers=upload["headers"])
    assert put.status_code == 204, put.text

    done = await example.client.post(f"/files/{body['id']}/complete", headers=acme.admin)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "processed"

    read = await example.client.get(f"/files/{body['id']}", headers=acme.user)
    assert read.status_code == 200
    download = await example.client.get(read.json()["download_url"])
    assert download.status_code == 200
    assert download.content == PNG

    assert_problem(await example.client.get(f"/files/{body['id']}", headers=globex.admin), 404)
    assert_problem(await example.client.get("/files/not-an-id", headers=acme.admin), 404)
    bad = await example.client.post("/files/uploads", json={**announce, "size": "big"}, headers=acme.admin)
    assert assert_problem(bad, 422)["errors"][0]["loc"] == ["body", "size"]


async def test_webhooks_are_managed_by_admins_only(example: Example, acme: Brand, globex: Brand) -> None:
    endpoint = {"url": "https://hooks.example.com/x", "events": ["order.created"]}
    assert_problem(await example.client.post("/webhooks", json=endpoint, headers=acme.user), 403)
    assert_problem(await example.client.get("/webhooks", headers=acme.user), 403)
    created = await example.client.post("/webhooks", json=endpoint, headers=acme.admin)
    assert created.status_code == 201, created.text
    listed = (await example.client.get("/webhooks", headers=acme.admin)).json()["items"]
    assert [item["id"] for item in listed] == [created.json()["id"]]
    assert "secret" not in listed[0]
    assert_problem(
        await example.client.delete(f"/webhooks/{created.json()['id']}", headers=globex.admin), 404
    )
    deleted = await example.client.delete(f"/webhooks/{created.json()['id']}", headers=acme.admin)
    assert deleted.status_code == 204


async def test_user_role_holds_exactly_the_documented_permissions(example: Example, acme: Brand) -> None:
    me = (await example.client.get("/auth/me", headers=acme.user)).json()
    assert me["role"] == "USER"
    assert sorted(me["permissions"]) == [
        "files.read",
        "inventory.read",
        "orders.create",
        "orders.read",
        "products.read",
    ]
    admin = (await example.client.get("/auth/me", headers=acme.admin)).json()
    assert admin["role"] == "ADMIN"
    assert {
        "products.create",
        "products.update",
        "products.delete",
        "inventory.adjust",
        "files.create",
        "webhooks.manage",
        "users.read",
    } <= set(admin["permissions"])
