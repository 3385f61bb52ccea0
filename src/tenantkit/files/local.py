"""Local-directory storage: the embedded default, with app-served signed URLs.

Objects live under ``root`` at their key (``t/<tenant>/<uuid>``) with a small
``.meta`` sidecar holding the content type. Clients reach them only through
URLs that :func:`tenantkit.files.routes.local_file_routes` serves; each URL
carries an HMAC-SHA256 signature over the method, key, expiry, content type,
size (and download file name), checked in constant time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from tenantkit.errors import (
    BadRequestError,
    ConflictError,
    PayloadTooLargeError,
    PermissionDeniedError,
)
from tenantkit.files.storage import ObjectInfo, PresignedUpload, is_valid_key, validate_key

__all__ = ["LocalGrant", "LocalStorage"]

MIN_SECRET_BYTES = 32
_MAX_TOKEN = 4096
_DENIED = "This file URL is invalid or has expired."


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class LocalGrant:
    """What a verified local URL allows.

    Attributes:
        method: ``"PUT"`` (upload) or ``"GET"`` (download).
        key: The object.
        expires_at: UNIX time the URL stops working; ``None`` for public URLs.
        content_type: The exact type an upload must carry, or a download answers with.
        size: The exact length an upload must have (``None`` for downloads).
        filename: The download's file name (display only).
    """

    method: str
    key: str
    expires_at: int | None
    content_type: str | None
    size: int | None
    filename: str | None


class LocalStorage:
    """Files in a local directory, uploaded and downloaded through signed app URLs.

    Args:
        root: The directory holding the objects (created on demand).
        secret: Key material for the URL signatures, at least 32 bytes. A
            purpose-specific key is derived from it, so a deployment secret
            can be reused safely.
        base_url_path: Where the routes of
            :func:`~tenantkit.files.routes.local_file_routes` are mounted.
        origin: Prepended to every URL (``"https://api.example.com"``);
            empty gives URLs relative to the API's origin.
        clock: The time source (UNIX seconds); tests replace it.

    Raises:
        ValueError: ``secret`` is shorter than 32 bytes.
    """

    def __init__(
        self,
        root: Path,
        secret: bytes,
        base_url_path: str = "/files/_local",
        *,
        origin: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"LocalStorage secret must be at least {MIN_SECRET_BYTES} bytes")
        self.root = Path(root)
        self.base_url_path = "/" + base_url_path.strip("/")
        self.origin = origin.rstrip("/")
        self._clock = clock
        self._mac_key = hmac.new(secret, b"tenantkit.files.local-url.v1", hashlib.sha256).digest()

    def __repr__(self) -> str:
        return (
            f"LocalStorage(root={str(self.root)!r}, base_url_path={self.base_url_path!r}, "
            "secret='**********')"
        )

    # ------------------------------------------------------------------ #
    # Signed URLs
    # ------------------------------------------------------------------ #

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._mac_key, body, hashlib.sha256).digest()

    def _url(self, grant: dict[str, Any]) -> str:
        body = _b64encode(json.dumps(grant, separators=(",", ":"), sort_keys=True).encode())
        token = f"{body}.{_b64encode(self._mac(body.encode('ascii')))}"
        return f"{self.origin}{self.base_url_path}/{token}"

    def _expiry(self, expires_in: int) -> int:
        if expires_in < 1:
            raise ValueError("expires_in must be at least 1 second")
        return int(self._clock()) + int(expires_in)

    def verify(self, token: str, method: str) -> LocalGrant:
        """Check a URL token for ``method`` and return what it grants.

        The signature is compared in constant time before anything in the
        token is trusted; then the method, the expiry and the key are checked.

        Raises:
            PermissionDeniedError: tampered, forged, expired, or for another method (403).
        """
        try:
            if len(token) > _MAX_TOKEN:
                raise ValueError("token too long")
            body, _, signature = token.partition(".")
            expected = self._mac(body.encode("ascii"))
            if not hmac.compare_digest(expected, _b64decode(signature)):
                raise ValueError("bad signature")
            data = json.loads(_b64decode(body))
            grant = LocalGrant(
                method=str(data["m"]),
                key=str(data["k"]),
                expires_at=None if data["e"] is None else int(data["e"]),
                content_type=None if data["t"] is None else str(data["t"]),
                size=None if data["s"] is None else int(data["s"]),
                filename=None if data["f"] is None else str(data["f"]),
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise PermissionDeniedError(_DENIED) from None
        if grant.method != method or not is_valid_key(grant.key):
            raise PermissionDeniedError(_DENIED)
        if grant.expires_at is None:
            if method != "GET":
                raise PermissionDeniedError(_DENIED)
        elif self._clock() >= grant.expires_at:
            raise PermissionDeniedError(_DENIED)
        return grant

    async def presign_upload(
        self, key: str, *, content_type: str, size: int, expires_in: int
    ) -> PresignedUpload:
        """A signed ``PUT`` URL accepting exactly ``size`` bytes of ``content_type``."""
        validate_key(key)
        if size < 0:
            raise ValueError("size must not be negative")
        url = self._url(
            {
                "m": "PUT",
                "k": key,
                "e": self._expiry(expires_in),
                "t": content_type,
                "s": int(size),
                "f": None,
            }
        )
        return PresignedUpload(url=url, method="PUT", headers={"Content-Type": content_type})

    async def presign_download(self, key: str, *, expires_in: int, filename: str, content_type: str) -> str:
        """A signed ``GET`` URL answering the object as an attachment named ``filename``."""
        validate_key(key)
        return self._url(
            {
                "m": "GET",
                "k": key,
                "e": self._expiry(expires_in),
                "t": content_type,
                "s": None,
                "f": filename,
            }
        )

    async def public_url(self, key: str) -> str:
        """A signed ``GET`` URL that does not expire (only issued for public files)."""
        validate_key(key)
        return self._url({"m": "GET", "k": key, "e": None, "t": None, "s": None, "f": None})

    # ------------------------------------------------------------------ #
    # Objects
    # ------------------------------------------------------------------ #

    def path_for(self, key: str) -> Path:
        """The file holding ``key``'s bytes (``ValueError`` for anything but a tenantkit key)."""
        # The strict key shape (two lower-case UUIDs under "t/") leaves no room
        # for "..", separators or absolute paths, so this join stays under root.
        return self.root.joinpath(*validate_key(key).split("/"))

    @staticmethod
    def _meta_path(path: Path) -> Path:
        return path.with_name(path.name + ".meta")

    def _head_sync(self, key: str) -> ObjectInfo | None:
        path = self.path_for(key)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        try:
            content_type = json.loads(self._meta_path(path).read_bytes()).get("content_type")
        except (OSError, ValueError):
            content_type = None
        return ObjectInfo(
            size=stat.st_size,
            content_type=content_type,
            etag=f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"',
        )

    async def head(self, key: str) -> ObjectInfo | None:
        """Size and content type of an object, or ``None`` if it does not exist."""
        return await asyncio.to_thread(self._head_sync, key)

    def _read_prefix_sync(self, key: str, n: int) -> bytes:
        try:
            with self.path_for(key).open("rb") as handle:
                return handle.read(n)
        except FileNotFoundError:
            return b""

    async def read_prefix(self, key: str, n: int) -> bytes:
        """The first ``n`` bytes of an object (empty if it does not exist)."""
        return await asyncio.to_thread(self._read_prefix_sync, key, n)

    async def read(self, key: str, *, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        """Stream an object in chunks; file reads run in a worker thread."""
        handle: BinaryIO = await asyncio.to_thread(self.path_for(key).open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_size):
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    async def copy(self, source: str, destination: str) -> bool:
        """Copy an object's bytes and type to a new key (atomically, never over an existing object).

        Raises:
            ConflictError: an object already exists at ``destination`` (409).
        """
        info = await self.head(source)
        if info is None:
            return False
        try:
            await self.write(
                destination,
                self.read(source),
                size=info.size,
                content_type=info.content_type or "application/octet-stream",
            )
        except FileNotFoundError:  # deleted between head and read
            return False
        return True

    def _delete_sync(self, key: str) -> None:
        path = self.path_for(key)
        path.unlink(missing_ok=True)
        self._meta_path(path).unlink(missing_ok=True)

    async def delete(self, key: str) -> None:
        """Delete an object and its metadata (no error if missing)."""
        await asyncio.to_thread(self._delete_sync, key)

    def _ping_sync(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise OSError(f"{self.root} is not writable")

    async def ping(self) -> None:
        """Raise ``OSError`` if the directory cannot be created or written."""
        await asyncio.to_thread(self._ping_sync)

    # ------------------------------------------------------------------ #
    # Writing (used by the upload route)
    # ------------------------------------------------------------------ #

    def _open_part(self, path: Path) -> tuple[Path, BinaryIO]:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            raise ConflictError("An object already exists at this key.")
        part = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        return part, part.open("xb")

    def _commit(self, handle: BinaryIO, part: Path, path: Path, content_type: str) -> None:
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        meta_part = part.with_name(part.name + ".meta")
        meta_part.write_text(json.dumps({"content_type": content_type}))
        try:
            os.link(part, path)  # atomic, and fails instead of replacing an existing object
        except FileExistsError:
            meta_part.unlink(missing_ok=True)
            raise ConflictError("An object already exists at this key.") from None
        finally:
            part.unlink(missing_ok=True)
        os.replace(meta_part, self._meta_path(path))

    @staticmethod
    def _discard(handle: BinaryIO, part: Path) -> None:
        with contextlib.suppress(OSError):
            handle.close()
        part.unlink(missing_ok=True)

    async def write(
        self, key: str, chunks: AsyncIterator[bytes], *, size: int, content_type: str
    ) -> ObjectInfo:
        """Store exactly ``size`` bytes at ``key``, atomically and never over an existing object.

        The bytes go to a temporary file first, which is linked into place
        only once complete, so readers never see a partial object.

        Raises:
            ConflictError: an object already exists at ``key`` (409).
            PayloadTooLargeError: more than ``size`` bytes arrived (413).
            BadRequestError: fewer than ``size`` bytes arrived (400).
        """
        path = self.path_for(key)
        part, handle = await asyncio.to_thread(self._open_part, path)
        try:
            received = 0
            async for chunk in chunks:
                if not chunk:
                    continue
                received += len(chunk)
                if received > size:
                    raise PayloadTooLargeError(f"The upload is larger than the declared {size} bytes.")
                await asyncio.to_thread(handle.write, chunk)
            if received != size:
                raise BadRequestError(f"The upload is shorter than the declared {size} bytes.")
            await asyncio.to_thread(self._commit, handle, part, path, content_type)
        except BaseException:
            await asyncio.to_thread(self._discard, handle, part)
            raise
        return ObjectInfo(size=size, content_type=content_type)
