"""LocalStorage and its routes: signed URLs, exact size and type, atomic writes, safe downloads."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tenantkit.errors import PermissionDeniedError
from tenantkit.files import LocalStorage, content_disposition, new_key, validate_key
from tests.files.conftest import LOCAL_SECRET, PNG, StorageBackend
from tests.helpers import assert_problem


class Clock:
    def __init__(self, now: float = 1_900_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _local(backend: StorageBackend) -> LocalStorage:
    assert isinstance(backend.storage, LocalStorage)
    return backend.storage


def _path(url: str) -> str:
    return httpx.URL(url).path


def _tamper_payload(url: str, **changes: object) -> str:
    base, _, token = url.rpartition("/")
    body, _, signature = token.partition(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{base}/{forged}.{signature}"


async def test_put_round_trip_and_exact_download_headers(local_backend: StorageBackend) -> None:
    storage = _local(local_backend)
    key = new_key(uuid.uuid4())
    upload = await storage.presign_upload(key, content_type="image/png", size=len(PNG), expires_in=60)
    assert upload.method == "PUT"
    assert upload.headers == {"Content-Type": "image/png"}
    assert upload.url.startswith("/files/_local/")

    response = await local_backend.http.put(upload.url, content=PNG, headers=upload.headers)
    assert response.status_code == 204
    info = await storage.head(key)
    assert info is not None and (info.size, info.content_type) == (len(PNG), "image/png")
    assert await storage.read_prefix(key, 8) == PNG[:8]
    assert b"".join([chunk async for chunk in storage.read(key, chunk_size=100)]) == PNG

    url = await storage.presign_download(
        key, expires_in=60, filename='evil"\r\nSet-Cookie: a=b;.png', content_type="image/png"
    )
    download = await local_backend.http.get(url)
    assert download.status_code == 200
    assert download.content == PNG
    assert download.headers["content-type"] == "image/png"
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["cache-control"] == "private, no-store"
    assert "sandbox" in download.headers["content-security-policy"]
    disposition = download.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert "\r" not in disposition and "\n" not in disposition
    assert "set-cookie" not in download.headers


@pytest.mark.parametrize("body_size", [len(PNG) + 1, len(PNG) * 4])
async def test_a_bigger_upload_than_declared_is_refused(
    local_backend: StorageBackend, body_size: int
) -> None:
    storage = _local(local_backend)
    key = new_key(uuid.uuid4())
    upload = await storage.presign_upload(key, content_type="image/png", size=len(PNG), expires_in=60)
    body = (PNG * 5)[:body_size]
    response = await local_backend.http.put(upload.url, content=body, headers=upload.headers)
    assert_problem(response, 413)
    assert await storage.head(key) is None


async def test_a_smaller_upload_than_declared_is_refused(local_backend: StorageBackend) -> None:
    storage = _local(local_backend)
    key = new_key(uuid.uuid4())
    upload = await storage.presign_upload(key, content_type="image/png", size=len(PNG), expires_in=60)
    response = await local_backend.http.put(upload.url, content=PNG[:-1], headers=upload.headers)
    assert_problem(response, 400)
    assert await storage.head(key) is None


async def test_a_body_longer_than_its_content_length_is_refused(local_backend: StorageBackend) -> None:
    storage = _local(local_backend)
    key = new_key(uuid.uuid4())
    upload = await storage.presign_upload(key, content_type="image/png", size=10, expires_in=60)
    headers = {**upload.headers, "Content-Length": "10"}
    response = await local_backend.http.put(upload.url, content=PNG, headers=headers)
    assert_problem(response, 413)
    assert await storage.head(key) is None
    assert list(storage.root.rglob("*")) == [] or all(p.is_dir() for p in storage.root.rglob("*"))


async def test_a_streamed_upload_without_length_is_refused(local_backend: StorageBackend) -> None:
    storage = _local(local_backend)
    key = new_key(uuid.uuid4())
    upload = await storage.presign_upload(key, content_type="image/png", size=len(PNG), expires_in=60)

    async def chunks() -> AsyncIterator[bytes]:
        yield PNG

    response = await local_backend.http.put(upload.url, content=chunks(), headers=upload.headers)
    assert_problem(response, 400)  # chunked: no Content-Length to hold against the declared size
    assert await storage.head(key) is None


async def test_the_declared_content_type_is_enforced(local_backend: StorageBackend) -> None:
    storage = _local(local_backend)
    key = new_key(uuid.uuid4())
    upload = await storage.presign_upload(key, content_type="image/png", size=len(PNG), expires_in=60)
    for sent in ("text/html", "image/png; charset=utf-8", "IMAGE/PNG", ""):
        response = await local_backend.http.put(upload.url, content=PNG, headers={"Content-Type": sent})
        assert_problem(response, 415)
    assert await storage.head(key) is None


async def test_an_existing_object_is_never_overwritten(local_backend: StorageBackend) -> None:
    storage = _local(local_backend)
    key = new_key(uuid.uuid4())
    upload = await storage.presign_upload(key, content_type="text/plain", size=5, expires_in=60)
    first = await local_backend.http.put(upload.url, content=b"first", headers=upload.headers)
    assert first.status_code == 204
    second = await local_backend.http.put(upload.url, content=b"evil!", headers=upload.headers)
    assert_problem(second, 409)
    assert await storage.read_prefix(key, 100) == b"first"
    leftovers = [p.name for p in storage.root.rglob("*") if p.is_file()]
    assert sorted(leftovers) == sorted([key.rsplit("/", 1)[1], key.rsplit("/", 1)[1] + ".meta"])


async def test_expired_urls_are_refused(tmp_path: Path) -> None:
    from starlette.applications import Starlette

    from tenantkit.files import local_file_routes
    from tenantkit.http import problem_exception_handlers
    from tests.helpers import serve

    clock = Clock()
    storage = LocalStorage(tmp_path, LOCAL_SECRET, clock=clock)
    app = Starlette(routes=local_file_routes(storage), exception_handlers=problem_exception_handlers())
    key = new_key(uuid.uuid4())
    upload = await storage.presign_upload(key, content_type="text/plain", size=2, expires_in=300)
    async with serve(app) as client:
        clock.now += 300
        late = await client.put(upload.url, content=b"hi", headers=upload.headers)
        assert_problem(late, 403)
        assert await storage.head(key) is None

        clock.now -= 1
        on_time = await client.put(upload.url, content=b"hi", headers=upload.headers)
        assert on_time.status_code == 204

        download = await storage.presign_download(
            key, expires_in=60, filename="hi.txt", content_type="text/plain"
        )
        assert (await client.get(download)).status_code == 200
        clock.now += 61
        assert_problem(await client.get(download), 403)


async def test_tampered_or_forged_urls_are_refused(local_backend: StorageBackend, tmp_path: Path) -> None:
    storage = _local(local_backend)
    key = new_key(uuid.uuid4())
    upload = await storage.presign_upload(key, content_type="text/plain", size=2, expires_in=60)
    base, _, token = upload.url.rpartition("/")
    body, _, signature = token.partition(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    other_secret = LocalStorage(tmp_path / "other", b"another-secret-" + b"z" * 32)
    forged = await other_secret.presign_upload(key, content_type="text/plain", size=2, expires_in=60)
    get_url = await storage.presign_download(key, expires_in=60, filename="a.txt", content_type="text/plain")
    candidates = [
        f"{base}/{body}.{flipped}",  # signature altered
        _tamper_payload(upload.url, s=2_000_000),  # size raised
        _tamper_payload(upload.url, t="text/html"),  # type changed
        _tamper_payload(upload.url, e=4_000_000_000),  # expiry extended
        _tamper_payload(upload.url, k=new_key(uuid.uuid4())),  # another key
        forged.url,  # signed with another secret
        get_url,  # a download URL used for an upload
        f"{base}/{body}",  # no signature
        f"{base}/{body}.",
        f"{base}/not-a-token",
        f"{base}/{'A' * 5000}.{signature}",
    ]
    for url in candidates:
        response = await local_backend.http.put(url, content=b"hi", headers={"Content-Type": "text/plain"})
        body_json = assert_problem(response, 403)
        assert body_json["status"] == 403
    assert await storage.head(key) is None
    assert_problem(await local_backend.http.get(upload.url), 403)  # an upload URL used to download


async def test_verify_checks_the_signature_before_the_key(local_backend: StorageBackend) -> None:
    storage = _local(local_backend)
    # A correctly signed token naming a traversal key is still refused.
    url = storage._url({"m": "GET", "k": "../../etc/passwd", "e": None, "t": None, "s": None, "f": None})
    with pytest.raises(PermissionDeniedError):
        storage.verify(url.rpartition("/")[2], "GET")
    assert_problem(await local_backend.http.get(url), 403)


TENANT = uuid.UUID("0b7e6c1e-5d0a-4c43-9f3e-2a1d7b1f9c10")
OBJECT = uuid.UUID("5f1c8e2a-9b3d-4e7f-8a6b-c4d2e0f1a3b5")


@pytest.mark.parametrize(
    "key",
    [
        "../etc/passwd",
        "t/../../etc/passwd",
        f"t/{TENANT}/../../x",
        f"/t/{TENANT}/{OBJECT}",
        f"t/{TENANT}/{OBJECT}\n",
        f"t/{TENANT}/{OBJECT}/x",
        f"t/{TENANT}\\{OBJECT}",
        f"t/{str(TENANT).upper()}/{OBJECT}",
        f"t/{TENANT}/report.pdf",
        f"t/{TENANT}/{OBJECT}\x00",
        f"u/{TENANT}/{OBJECT}",
        "",
    ],
)
async def test_only_server_generated_keys_are_accepted(local_backend: StorageBackend, key: str) -> None:
    storage = _local(local_backend)
    with pytest.raises(ValueError, match="invalid object key"):
        validate_key(key)
    with pytest.raises(ValueError, match="invalid object key"):
        storage.path_for(key)
    with pytest.raises(ValueError, match="invalid object key"):
        await storage.presign_upload(key, content_type="text/plain", size=1, expires_in=60)
    with pytest.raises(ValueError, match="invalid object key"):
        await storage.head(key)


async def test_missing_objects_and_ping(local_backend: StorageBackend) -> None:
    storage = _local(local_backend)
    key = new_key(uuid.uuid4())
    assert await storage.head(key) is None
    assert await storage.read_prefix(key, 16) == b""
    await storage.delete(key)
    await storage.ping()
    url = await storage.presign_download(key, expires_in=60, filename="x.txt", content_type="text/plain")
    assert_problem(await local_backend.http.get(url), 404)


def test_secrets_are_checked_and_masked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        LocalStorage(tmp_path, b"short")
    storage = LocalStorage(tmp_path, LOCAL_SECRET, "files/blobs/", origin="https://api.example.com/")
    assert LOCAL_SECRET.decode() not in repr(storage)
    assert storage.base_url_path == "/files/blobs"


async def test_absolute_urls_with_an_origin(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, LOCAL_SECRET, origin="https://api.example.com/")
    upload = await storage.presign_upload(
        new_key(uuid.uuid4()), content_type="text/plain", size=1, expires_in=60
    )
    assert upload.url.startswith("https://api.example.com/files/_local/")


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("report.pdf", 'attachment; filename="report.pdf"'),
        ("my report.pdf", "attachment; filename=\"my report.pdf\"; filename*=UTF-8''my%20report.pdf"),
        ("résumé.pdf", "attachment; filename=\"resume.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"),
        ('a"b;c\\d.txt', 'attachment; filename="d.txt"'),
        ('a"b;c.txt', "attachment; filename=\"a_b_c.txt\"; filename*=UTF-8''a%22b%3Bc.txt"),
        (
            "x\r\nSet-Cookie: y",
            "attachment; filename=\"xSet-Cookie: y\"; filename*=UTF-8''xSet-Cookie%3A%20y",
        ),
        ("../../etc/passwd", 'attachment; filename="passwd"'),
        ("\x00", 'attachment; filename="download"'),
    ],
)
def test_content_disposition_is_always_a_safe_attachment(filename: str, expected: str) -> None:
    assert content_disposition(filename) == expected
