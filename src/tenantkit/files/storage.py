"""The object-storage protocol, its value types and the helpers both backends share.

A :class:`Storage` holds the bytes of uploaded files under server-generated
keys; clients never stream files through the API process (S3) or do so only
through short-lived signed URLs (the local directory backend).
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable
from urllib.parse import quote

if TYPE_CHECKING:
    from tenantkit.settings import Settings

__all__ = [
    "ObjectInfo",
    "PresignedUpload",
    "Storage",
    "content_disposition",
    "create_storage",
    "is_valid_key",
    "new_key",
    "validate_key",
]

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
KEY_PATTERN = re.compile(rf"t/{_UUID}/{_UUID}")
"""Every key tenantkit creates: ``t/<tenant uuid>/<random uuid>``, lower-case, nothing else."""

_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f\x7f"\\/;]')


@dataclass(frozen=True, slots=True)
class PresignedUpload:
    """Where and how a client sends the bytes of one upload.

    Attributes:
        url: The URL to send the request to.
        method: ``"POST"`` (multipart form: every ``fields`` entry, then the
            file as the last part, named ``file``) or ``"PUT"`` (raw body
            with ``headers``).
        headers: Headers the request must carry.
        fields: Form fields a ``POST`` must carry, in order.
    """

    url: str
    method: Literal["PUT", "POST"]
    headers: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape the HTTP API answers with (``{"url", "method", "headers", "fields"}``)."""
        return {
            "url": self.url,
            "method": self.method,
            "headers": dict(self.headers),
            "fields": dict(self.fields),
        }


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What the storage knows about a stored object.

    Attributes:
        size: Length in bytes.
        content_type: The media type recorded with the object, if any.
        etag: An opaque version tag, if the backend has one.
    """

    size: int
    content_type: str | None
    etag: str | None = None


@runtime_checkable
class Storage(Protocol):
    """Object storage for uploaded files. Every method is a coroutine (or async iterator).

    Keys are always server-generated (:func:`new_key`) and checked with
    :func:`validate_key` by every implementation.
    """

    async def presign_upload(
        self, key: str, *, content_type: str, size: int, expires_in: int
    ) -> PresignedUpload:
        """A short-lived upload that only accepts exactly ``size`` bytes of ``content_type``.

        Args:
            key: Where the object will live.
            content_type: The one media type the upload may carry.
            size: The exact length in bytes the upload must have.
            expires_in: Seconds the URL stays valid.
        """
        ...

    async def presign_download(self, key: str, *, expires_in: int, filename: str, content_type: str) -> str:
        """A short-lived URL answering the object as an attachment.

        Args:
            key: The object.
            expires_in: Seconds the URL stays valid.
            filename: The file name the browser should save it as (display only).
            content_type: The media type to answer with.
        """
        ...

    async def public_url(self, key: str) -> str:
        """A stable URL for an object meant to be public."""
        ...

    async def head(self, key: str) -> ObjectInfo | None:
        """Size, type and tag of an object, or ``None`` if it does not exist."""
        ...

    async def read_prefix(self, key: str, n: int) -> bytes:
        """The first ``n`` bytes of an object (fewer if it is shorter), for magic-byte checks."""
        ...

    def read(self, key: str, *, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        """Stream the whole object in chunks (for checksums and processing jobs)."""
        ...

    async def copy(self, source: str, destination: str) -> bool:
        """Copy ``source`` to a new object ``destination`` on the storage side.

        The copy is one consistent snapshot of ``source``: later writes to
        ``source`` never change it. ``FileService.complete`` verifies and
        serves the copy, at a key no upload URL or form names.

        Returns:
            ``False`` if ``source`` does not exist.
        """
        ...

    async def delete(self, key: str) -> None:
        """Delete an object; deleting a missing object is not an error."""
        ...

    async def ping(self) -> None:
        """Raise if the storage cannot be reached (for health checks)."""
        ...


def new_key(tenant_id: uuid.UUID) -> str:
    """A fresh object key for ``tenant_id``: ``t/<tenant_id>/<random uuid4>``.

    User input (file names included) never becomes part of a key.
    """
    return f"t/{tenant_id}/{uuid.uuid4()}"


def is_valid_key(key: str) -> bool:
    """Whether ``key`` has exactly the shape :func:`new_key` produces."""
    return isinstance(key, str) and KEY_PATTERN.fullmatch(key) is not None


def validate_key(key: str) -> str:
    """Return ``key`` if it is a tenantkit key, else raise ``ValueError``.

    The strict shape makes path traversal (``..``, absolute paths, backslashes,
    NUL bytes) impossible whatever the backend does with the key.
    """
    if not is_valid_key(key):
        raise ValueError("invalid object key")
    return key


def _ascii_fallback(filename: str) -> str:
    folded = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii")
    cleaned = _UNSAFE_FILENAME.sub("_", folded).strip(" .")
    return cleaned or "download"


def content_disposition(filename: str) -> str:
    """An ``attachment`` ``Content-Disposition`` value that is safe for any ``filename``.

    Control characters, quotes, backslashes, slashes and semicolons cannot
    break out of the header or name a path; non-ASCII names travel in
    ``filename*`` (RFC 6266 / RFC 5987) with an ASCII fallback.
    """
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C") or "download"
    fallback = _ascii_fallback(base)
    encoded = quote(base, safe="")
    if encoded == fallback:
        return f'attachment; filename="{fallback}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def create_storage(
    settings: Settings,
    *,
    local_secret: bytes,
    local_root: Path | None = None,
    local_base_url_path: str = "/files/_local",
) -> Storage:
    """The storage the settings ask for.

    ``TENANTKIT_S3_BUCKET`` set gives an :class:`~tenantkit.files.s3.S3Storage`
    (``tenantkit[s3]`` needed); otherwise a
    :class:`~tenantkit.files.local.LocalStorage` in ``<data_dir>/files``.

    Args:
        settings: The kit's settings.
        local_secret: The key signing local URLs (at least 32 bytes; derive
            it from a deployment secret, never hard-code it).
        local_root: Directory for the local backend (default ``<data_dir>/files``).
        local_base_url_path: Where :func:`~tenantkit.files.routes.local_file_routes` is mounted.

    Raises:
        MissingDependencyError: S3 is configured but aiobotocore is not installed.
    """
    if settings.s3_bucket:
        from tenantkit.files.s3 import S3Storage

        return S3Storage.from_settings(settings)
    from tenantkit.files.local import LocalStorage

    root = local_root if local_root is not None else settings.data_dir / "files"
    return LocalStorage(root, local_secret, base_url_path=local_base_url_path)
