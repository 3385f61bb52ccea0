"""S3Storage against a moto server over HTTP: POST policies, downloads, bucket handling."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tenantkit.context import TenantRef, tenant_context
from tenantkit.errors import ConflictError
from tenantkit.files import FileService, LocalStorage, create_storage, new_key
from tenantkit.files.s3 import S3Storage
from tenantkit.settings import Settings
from tests.files.conftest import LOCAL_SECRET, PNG, Recorder, StorageBackend

pytestmark = pytest.mark.parametrize("backend_kind", ["s3"])


def _s3(backend: StorageBackend) -> S3Storage:
    assert isinstance(backend.storage, S3Storage)
    return backend.storage


async def test_the_post_policy_pins_exact_size_and_type(files_backend: StorageBackend) -> None:
    storage = _s3(files_backend)
    key = new_key(uuid.uuid4())
    upload = await storage.presign_upload(key, content_type="image/png", size=1234, expires_in=120)
    assert upload.method == "POST"
    assert upload.url == f"{storage.endpoint_url}/{storage.bucket}"
    assert upload.fields["key"] == key
    assert upload.fields["Content-Type"] == "image/png"
    assert upload.fields["x-amz-signature"]
    policy = json.loads(base64.b64decode(upload.fields["policy"]))
    assert ["content-length-range", 1234, 1234] in policy["conditions"]
    assert {"Content-Type": "image/png"} in policy["conditions"]
    assert {"key": key} in policy["conditions"]
    assert {"bucket": storage.bucket} in policy["conditions"]


async def test_a_bigger_post_than_declared_never_becomes_a_file(
    files_backend: StorageBackend,
    service: FileService,
    tenants: tuple[TenantRef, TenantRef],
    recorder: Recorder,
) -> None:
    tenant, _ = tenants
    with tenant_context(tenant):
        file, upload = await service.create_upload("a.png", "image/png", len(PNG), "private")
        response = await files_backend.upload(upload, PNG + b"\x00" * 4096)
        if response.is_success:
            # moto does not evaluate POST policies (AWS answers 400 EntityTooLarge
            # here); the size check on completion is the second wall.
            with pytest.raises(ConflictError, match="size differs"):
                await service.complete(file.id)
            assert (await service.get(file.id)).status == "rejected"
        else:
            assert response.status_code == 400
            assert "EntityTooLarge" in response.text
            with pytest.raises(ConflictError, match="Upload not found"):
                await service.complete(file.id)
    assert await files_backend.storage.head(file.key) is None
    assert recorder.events == []


async def test_a_post_with_another_content_type_is_rejected(
    files_backend: StorageBackend, service: FileService, tenants: tuple[TenantRef, TenantRef]
) -> None:
    tenant, _ = tenants
    with tenant_context(tenant):
        file, upload = await service.create_upload("a.png", "image/png", len(PNG), "private")
        response = await files_backend.upload(upload, PNG, content_type="text/html")
        if response.is_success:  # moto again; AWS refuses the policy violation itself
            with pytest.raises(ConflictError, match="content type differs"):
                await service.complete(file.id)
        else:
            assert response.status_code == 403
    assert await files_backend.storage.head(file.key) is None


async def test_downloads_are_presigned_attachments(files_backend: StorageBackend) -> None:
    storage = _s3(files_backend)
    key = new_key(uuid.uuid4())
    upload = await storage.presign_upload(key, content_type="text/plain", size=5, expires_in=60)
    assert (await files_backend.upload(upload, b"hello")).is_success

    url = await storage.presign_download(
        key, expires_in=90, filename="über report.txt", content_type="text/plain"
    )
    query = httpx.URL(url).params
    assert query["X-Amz-Expires"] == "90"
    assert query["response-content-disposition"].startswith("attachment;")
    assert query["response-content-type"] == "text/plain"
    assert "X-Amz-Signature" in query
    response = await files_backend.http.get(url)
    assert response.status_code == 200
    assert response.content == b"hello"
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"uber report.txt\"; filename*=UTF-8''%C3%BCber%20report.txt"
    )

    info = await storage.head(key)
    assert info is not None and (info.size, info.content_type) == (5, "text/plain")
    assert info.etag
    assert await storage.read_prefix(key, 3) == b"hel"
    assert await storage.read_prefix(key, 100) == b"hello"
    assert b"".join([c async for c in storage.read(key, chunk_size=2)]) == b"hello"
    await storage.delete(key)
    assert await storage.head(key) is None
    assert await storage.read_prefix(key, 16) == b""
    await storage.delete(key)  # deleting twice is fine


async def test_bucket_creation_is_idempotent_and_ping_checks_it(
    files_backend: StorageBackend, moto_endpoint: str
) -> None:
    storage = _s3(files_backend)
    await storage.ensure_bucket()
    await storage.ping()
    async with S3Storage(
        f"tk-missing-{uuid.uuid4().hex[:8]}",
        endpoint_url=moto_endpoint,
        access_key="testing",
        secret_key="testing",
    ) as missing:
        with pytest.raises(Exception, match="404|Not Found|NoSuchBucket"):
            await missing.ping()
        await missing.ensure_bucket()
        await missing.ping()


async def test_public_urls_and_keys_are_validated(files_backend: StorageBackend) -> None:
    storage = _s3(files_backend)
    key = new_key(uuid.uuid4())
    assert await storage.public_url(key) == f"{storage.endpoint_url}/{storage.bucket}/{key}"
    cdn = S3Storage("assets", public_base_url="https://cdn.example.com/")
    assert await cdn.public_url(key) == f"https://cdn.example.com/{key}"
    aws = S3Storage("assets", region="eu-west-3")
    assert await aws.public_url(key) == f"https://assets.s3.eu-west-3.amazonaws.com/{key}"
    with pytest.raises(ValueError, match="invalid object key"):
        await storage.presign_upload("../x", content_type="text/plain", size=1, expires_in=60)
    with pytest.raises(ValueError, match="invalid object key"):
        await storage.head("t/../../x")


def test_storage_is_built_from_settings(tmp_path: Path, backend_kind: str) -> None:
    base: dict[str, Any] = {"env": "test", "jwt_secret": "s" * 40, "data_dir": tmp_path}
    s3 = create_storage(
        Settings(
            **base,
            s3_endpoint_url="http://127.0.0.1:9000",
            s3_bucket="uploads",
            s3_access_key=SecretStr("AKIAEXAMPLE"),
            s3_secret_key=SecretStr("very-secret-key-value"),
            s3_region="eu-west-1",
        ),
        local_secret=LOCAL_SECRET,
    )
    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.endpoint_url, s3.region) == ("uploads", "http://127.0.0.1:9000", "eu-west-1")
    assert "very-secret-key-value" not in repr(s3)

    local = create_storage(Settings(**base), local_secret=LOCAL_SECRET)
    assert isinstance(local, LocalStorage)
    assert local.root == tmp_path / "files"
