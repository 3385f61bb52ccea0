"""Fixtures for the files suite: a moto S3 server over HTTP, local storage behind Starlette."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from tenantkit.db.engine import Database
from tenantkit.files import FileService, LocalStorage, PresignedUpload, Storage, local_file_routes
from tenantkit.http import problem_exception_handlers
from tests.conftest import free_port
from tests.helpers import serve

LOCAL_SECRET = b"files-test-secret-" + b"y" * 32
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + hashlib.sha512(b"pixels").digest() * 5


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A standalone moto S3 server on a free loopback port, spoken to over real HTTP."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@dataclass
class StorageBackend:
    """A storage plus an HTTP client that reaches its presigned URLs."""

    kind: str
    storage: Storage
    http: httpx.AsyncClient

    async def upload(
        self, upload: PresignedUpload, data: bytes, *, content_type: str | None = None
    ) -> httpx.Response:
        """Send ``data`` the way ``upload`` says (a different type when ``content_type`` is given)."""
        if upload.method == "POST":
            fields = dict(upload.fields)
            if content_type is not None:
                fields["Content-Type"] = content_type
            sent_type = content_type or fields.get("Content-Type", "application/octet-stream")
            return await self.http.post(upload.url, data=fields, files={"file": ("blob", data, sent_type)})
        headers = dict(upload.headers)
        if content_type is not None:
            headers["Content-Type"] = content_type
        return await self.http.put(upload.url, content=data, headers=headers)


@pytest.fixture
async def local_backend(tmp_path: Path) -> AsyncIterator[StorageBackend]:
    storage = LocalStorage(tmp_path / "objects", LOCAL_SECRET)
    app = Starlette(routes=local_file_routes(storage), exception_handlers=problem_exception_handlers())
    async with serve(app) as client:
        yield StorageBackend("local", storage, client)


@pytest.fixture
async def s3_backend(moto_endpoint: str) -> AsyncIterator[StorageBackend]:
    from tenantkit.files.s3 import S3Storage

    storage = S3Storage(
        f"tk-test-{uuid.uuid4().hex[:12]}",
        endpoint_url=moto_endpoint,
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
    )
    try:
        await storage.ensure_bucket()
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            yield StorageBackend("s3", storage, client)
    finally:
        await storage.close()


@pytest.fixture(params=["local", "s3"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def files_backend(request: pytest.FixtureRequest, backend_kind: str) -> StorageBackend:
    """Each storage in turn: LocalStorage in process, S3Storage against moto."""
    backend: StorageBackend = request.getfixturevalue(f"{backend_kind}_backend")
    return backend


@dataclass
class Recorder:
    """An ``on_uploaded`` callback that keeps what it receives."""

    events: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def service(files_backend: StorageBackend, database: Database, recorder: Recorder) -> FileService:
    return FileService(files_backend.storage, database, url_ttl=120, on_uploaded=recorder)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
