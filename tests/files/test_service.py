"""FileService on both storages: presigned round trips, verification, tenancy."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import pytest

from tenantkit.context import TenantRef, tenant_context
from tenantkit.db.engine import Database
from tenantkit.errors import ConflictError, NotFoundError, TenantScopeError, ValidationError
from tenantkit.files import FileObject, FileService, matches_signature
from tests.files.conftest import PNG, Recorder, StorageBackend, sha256

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_upload_round_trips_through_presigned_urls(
    files_backend: StorageBackend,
    service: FileService,
    tenants: tuple[TenantRef, TenantRef],
    recorder: Recorder,
) -> None:
    tenant, _ = tenants
    with tenant_context(tenant):
        file, upload = await service.create_upload("logo.png", "image/png", len(PNG), "private")
        assert file.status == "pending"
        assert upload.method == ("POST" if files_backend.kind == "s3" else "PUT")

        response = await files_backend.upload(upload, PNG)
        assert response.is_success, response.text

        completed = await service.complete(file.id)
        assert completed.status == "processed"
        assert completed.sha256 == sha256(PNG)
        assert completed.uploaded_at is not None

        described = await service.describe(file.id)
    assert described["status"] == "processed"
    assert described["sha256"] == sha256(PNG)
    assert described["size"] == len(PNG)
    assert "url" not in described

    download = await files_backend.http.get(described["download_url"])
    assert download.status_code == 200
    assert download.content == PNG
    assert sha256(download.content) == described["sha256"]
    assert download.headers["content-disposition"].startswith("attachment")
    assert 'filename="logo.png"' in download.headers["content-disposition"]
    assert download.headers["content-type"] == "image/png"
    if files_backend.kind == "local":
        assert download.headers["x-content-type-options"] == "nosniff"

    # What was verified is served from a fresh key that no upload URL names.
    assert completed.key != file.key
    assert completed.key.startswith(f"t/{tenant.id}/")
    assert await files_backend.storage.head(file.key) is None
    assert recorder.events == [
        {
            "id": str(file.id),
            "tenant_id": str(tenant.id),
            "key": completed.key,
            "filename": "logo.png",
            "content_type": "image/png",
            "size": len(PNG),
            "sha256": sha256(PNG),
        }
    ]


async def test_keys_are_tenant_prefixed_and_never_contain_the_filename(
    files_backend: StorageBackend, service: FileService, tenants: tuple[TenantRef, TenantRef]
) -> None:
    tenant, _ = tenants
    hostile = "../../../etc/passwd%2F..\\secret-report.pdf"
    with tenant_context(tenant):
        file, upload = await service.create_upload(hostile, "application/pdf", 10, "private")
    assert re.fullmatch(rf"t/{tenant.id}/{UUID}", file.key)
    assert "secret" not in file.key and "passwd" not in file.key and ".." not in file.key
    assert "secret" not in upload.url and "secret" not in str(upload.fields)
    assert file.filename == "secret-report.pdf"  # display name only, path parts dropped

    with tenant_context(tenant):
        other, _ = await service.create_upload(hostile, "application/pdf", 10, "private")
    assert other.key != file.key


async def test_wrong_magic_bytes_are_rejected_and_the_object_deleted(
    files_backend: StorageBackend,
    service: FileService,
    tenants: tuple[TenantRef, TenantRef],
    recorder: Recorder,
) -> None:
    tenant, _ = tenants
    fake_png = b"<html><script>alert(1)</script></html>".ljust(64, b" ")
    with tenant_context(tenant):
        file, upload = await service.create_upload("cat.png", "image/png", len(fake_png), "private")
        response = await files_backend.upload(upload, fake_png)
        assert response.is_success, response.text  # right size and type: storage accepts it
        with pytest.raises(ConflictError, match="does not match the declared type"):
            await service.complete(file.id)
        rejected = await service.get(file.id)
        assert rejected.status == "rejected"
        assert rejected.sha256 is None
        assert (await service.describe(file.id))["download_url"] is None
        with pytest.raises(ConflictError):  # stays rejected
            await service.complete(file.id)
    assert await files_backend.storage.head(file.key) is None
    assert recorder.events == []


async def test_other_tenants_cannot_see_or_complete_a_file(
    files_backend: StorageBackend, service: FileService, tenants: tuple[TenantRef, TenantRef]
) -> None:
    tenant_a, tenant_b = tenants
    with tenant_context(tenant_a):
        file, upload = await service.create_upload("a.png", "image/png", len(PNG), "private")
        assert (await files_backend.upload(upload, PNG)).is_success
    with tenant_context(tenant_b):
        with pytest.raises(NotFoundError):
            await service.describe(file.id)
        with pytest.raises(NotFoundError):
            await service.complete(file.id)
        with pytest.raises(NotFoundError):
            await service.get(file.id)
    with tenant_context(tenant_a):
        assert (await service.complete(file.id)).status == "processed"


async def test_completing_twice_is_idempotent_and_notifies_once(
    files_backend: StorageBackend,
    service: FileService,
    tenants: tuple[TenantRef, TenantRef],
    recorder: Recorder,
) -> None:
    tenant, _ = tenants
    with tenant_context(tenant):
        file, upload = await service.create_upload("notes.txt", "text/plain", 12, "private")
        assert (await files_backend.upload(upload, b"hello world\n")).is_success
        first = await service.complete(file.id)
        second = await service.complete(file.id)
    assert first.status == second.status == "processed"
    assert first.sha256 == second.sha256 == sha256(b"hello world\n")
    assert len(recorder.events) == 1
    assert recorder.events[0]["sha256"] == sha256(b"hello world\n")


async def test_complete_before_upload_is_a_conflict_and_stays_pending(
    files_backend: StorageBackend, service: FileService, tenants: tuple[TenantRef, TenantRef]
) -> None:
    tenant, _ = tenants
    with tenant_context(tenant):
        file, upload = await service.create_upload("a.png", "image/png", len(PNG), "private")
        with pytest.raises(ConflictError, match="Upload not found"):
            await service.complete(file.id)
        assert (await service.get(file.id)).status == "pending"
        assert (await service.describe(file.id))["download_url"] is None
        assert (await files_backend.upload(upload, PNG)).is_success
        assert (await service.complete(file.id)).status == "processed"


async def test_public_files_get_a_stable_url(
    files_backend: StorageBackend, service: FileService, tenants: tuple[TenantRef, TenantRef]
) -> None:
    tenant, _ = tenants
    with tenant_context(tenant):
        file, upload = await service.create_upload("banner.png", "image/png", len(PNG), "public")
        assert (await files_backend.upload(upload, PNG)).is_success
        completed = await service.complete(file.id)
        described = await service.describe(file.id)
        again = await service.describe(file.id)
    assert "download_url" not in described
    assert described["url"] == again["url"]
    assert completed.key in described["url"] or files_backend.kind == "local"
    if files_backend.kind == "local":
        response = await files_backend.http.get(described["url"])
        assert response.status_code == 200
        assert response.content == PNG
        assert response.headers["content-type"] == "image/png"
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_missing_file_is_not_found(
    files_backend: StorageBackend, service: FileService, tenants: tuple[TenantRef, TenantRef]
) -> None:
    with tenant_context(tenants[0]), pytest.raises(NotFoundError):
        await service.complete(uuid.uuid4())


@pytest.mark.parametrize("backend_kind", ["local"], indirect=True)
async def test_create_upload_validates_every_field(
    service: FileService, tenants: tuple[TenantRef, TenantRef]
) -> None:
    with tenant_context(tenants[0]), pytest.raises(ValidationError) as caught:
        await service.create_upload("\x00\n", "text/html", 25 * 1024 * 1024 + 1, "world")
    errors = caught.value.extensions["errors"]
    assert [e["loc"] for e in errors] == [
        ["body", "filename"],
        ["body", "content_type"],
        ["body", "size"],
        ["body", "visibility"],
    ]
    assert all({"loc", "msg", "type"} == set(e) for e in errors)
    assert caught.value.status == 422

    with tenant_context(tenants[0]), pytest.raises(ValidationError) as caught:
        await service.create_upload("x.svg", "image/svg+xml", 0, "private")
    assert [e["type"] for e in caught.value.extensions["errors"]] == [
        "content_type_not_allowed",
        "greater_than_equal",
    ]


@pytest.mark.parametrize("backend_kind", ["local"], indirect=True)
async def test_the_service_needs_a_tenant(service: FileService) -> None:
    with pytest.raises(TenantScopeError):
        await service.create_upload("a.txt", "text/plain", 1, "private")
    with pytest.raises(TenantScopeError):
        await service.describe(uuid.uuid4())


@pytest.mark.parametrize("backend_kind", ["local"], indirect=True)
async def test_rows_are_tenant_owned(
    service: FileService, tenants: tuple[TenantRef, TenantRef], database: object
) -> None:
    with tenant_context(tenants[0]):
        file, _ = await service.create_upload("a.txt", "text/plain", 1, "private")
    assert isinstance(file, FileObject)
    assert file.tenant_id == tenants[0].id


@pytest.mark.parametrize(
    ("content_type", "head", "ok"),
    [
        ("image/png", PNG[:16], True),
        ("image/png", b"GIF89a" + bytes(10), False),
        ("image/jpeg", b"\xff\xd8\xff\xe0" + bytes(12), True),
        ("image/jpeg", b"\x89PNG\r\n\x1a\n", False),
        ("image/gif", b"GIF87a", True),
        ("image/gif", b"GIF90a", False),
        ("image/webp", b"RIFF\x10\x00\x00\x00WEBPVP8 ", True),
        ("image/webp", b"RIFF\x10\x00\x00\x00AVI LIST", False),
        ("application/pdf", b"%PDF-1.7\n", True),
        ("application/pdf", b"PK\x03\x04", False),
        ("text/plain", b"\x00\xff binary-ish text", True),
        ("image/png", b"", False),
    ],
)
def test_magic_byte_signatures(content_type: str, head: bytes, ok: bool) -> None:
    assert matches_signature(content_type, head) is ok


@pytest.mark.parametrize("backend_kind", ["local"], indirect=True)
async def test_concurrent_completes_process_once(
    files_backend: StorageBackend,
    service: FileService,
    tenants: tuple[TenantRef, TenantRef],
    recorder: Recorder,
) -> None:
    with tenant_context(tenants[0]):
        file, upload = await service.create_upload("a.png", "image/png", len(PNG), "private")
        assert (await files_backend.upload(upload, PNG)).is_success
        results = await asyncio.gather(*(service.complete(file.id) for _ in range(4)))
        final = await service.get(file.id)
    assert final.status == "processed"
    assert {r.status for r in results} <= {"uploaded", "processed"}
    assert len(recorder.events) == 1


@pytest.mark.parametrize("backend_kind", ["local"], indirect=True)
async def test_a_failing_callback_does_not_undo_the_upload(
    files_backend: StorageBackend,
    database: Database,
    tenants: tuple[TenantRef, TenantRef],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("queue down")

    service = FileService(files_backend.storage, database, on_uploaded=broken)
    with tenant_context(tenants[0]):
        file, upload = await service.create_upload("a.txt", "text/plain", 2, "private")
        assert (await files_backend.upload(upload, b"ok")).is_success
        assert (await service.complete(file.id)).status == "processed"
    assert any("on_uploaded failed" in record.message for record in caplog.records)
