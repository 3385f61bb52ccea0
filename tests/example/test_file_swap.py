"""Once ``POST /files/{id}/complete`` answered 200, the upload URL or form cannot change the file.

The attack: upload a harmless file, let ``complete`` verify it, then send
other bytes (same size and type, so every check on the way would pass) with
the same presigned form or URL. ``GET /files/{id}`` must keep serving what
was verified.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import httpx
import pytest

from inventory_app.app import create_app
from tenantkit import TenantKit
from tests.example.conftest import Brand, Example
from tests.files.conftest import PNG, moto_endpoint  # noqa: F401  (the session's moto server)
from tests.helpers import serve

SWAPPED = PNG[:16] + bytes(255 - b for b in PNG[16:])  # same size, same magic bytes, other content
ANNOUNCE = {"filename": "logo.png", "content_type": "image/png", "size": len(PNG), "visibility": "private"}


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.in_process)])
def storage_example(request: pytest.FixtureRequest, backend: str) -> Example:
    """The example app on the local file store (the suite's ``example``), then on S3 (moto over HTTP).

    ``backend`` is requested so that this fixture is parametrized by it like ``example``.
    """
    return cast("Example", request.getfixturevalue("example" if request.param == "local" else "s3_example"))


@pytest.fixture
async def s3_example(
    example_kit_factory: Callable[..., TenantKit],
    moto_endpoint: str,  # noqa: F811
) -> AsyncIterator[Example]:
    """The example app storing its files in a fresh bucket of the session's moto server."""
    kit = example_kit_factory(
        s3_endpoint_url=moto_endpoint,
        s3_bucket=f"tk-swap-{uuid.uuid4().hex[:12]}",
        s3_access_key="testing",
        s3_secret_key="testing",
    )
    async with serve(create_app(kit)) as client:
        yield Example(client, kit)


async def send(example: Example, upload: dict[str, Any], data: bytes) -> httpx.Response:
    """Send ``data`` the way the API said (S3's POST form, or the local PUT URL)."""
    if upload["method"] == "POST":
        async with httpx.AsyncClient(trust_env=False, timeout=10) as outside:
            return await outside.post(
                upload["url"], data=upload["fields"], files={"file": ("logo.png", data, "image/png")}
            )
    return await example.client.put(upload["url"], content=data, headers=upload["headers"])


async def download(example: Example, url: str) -> httpx.Response:
    if url.startswith("/"):
        return await example.client.get(url)
    async with httpx.AsyncClient(trust_env=False, timeout=10) as outside:
        return await outside.get(url)


async def test_the_upload_form_cannot_replace_a_completed_file(storage_example: Example) -> None:
    example = storage_example
    acme: Brand = await example.brand("Acme")
    created = await example.client.post("/files/uploads", json=ANNOUNCE, headers=acme.admin)
    assert created.status_code == 201, created.text
    file_id, upload = created.json()["id"], created.json()["upload"]

    assert (await send(example, upload, PNG)).is_success
    done = await example.client.post(f"/files/{file_id}/complete", headers=acme.admin)
    assert done.status_code == 200, done.text
    assert done.json()["sha256"] == hashlib.sha256(PNG).hexdigest()

    # The same form/URL, other bytes that pass every check: whether the storage
    # accepts them or not, the file keeps serving what complete verified.
    await send(example, upload, SWAPPED)
    again = await example.client.post(f"/files/{file_id}/complete", headers=acme.admin)
    assert again.status_code == 200, again.text

    read = await example.client.get(f"/files/{file_id}", headers=acme.user)
    assert read.status_code == 200, read.text
    body = read.json()
    assert body["sha256"] == hashlib.sha256(PNG).hexdigest()
    served = await download(example, body["download_url"])
    assert served.status_code == 200, served.text
    assert served.content == PNG
