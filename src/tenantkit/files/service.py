"""Uploads as a small service: announce, upload directly to storage, complete, describe."""

from __future__ import annotations

import hashlib
import logging
import unicodedata
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NoReturn

from sqlalchemy import update
from sqlalchemy.engine import CursorResult

from tenantkit.context import current_tenant_id
from tenantkit.db.base import utcnow
from tenantkit.db.engine import Database
from tenantkit.db.scoping import scoped_get
from tenantkit.errors import ConflictError, NotFoundError, TenantScopeError, ValidationError
from tenantkit.files.models import FILE_VISIBILITIES, FileObject
from tenantkit.files.storage import PresignedUpload, Storage, new_key

__all__ = [
    "DEFAULT_ALLOWED_TYPES",
    "DEFAULT_MAX_SIZE",
    "FileService",
    "matches_signature",
]

logger = logging.getLogger("tenantkit.files")

DEFAULT_ALLOWED_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
        "text/csv",
    }
)
DEFAULT_MAX_SIZE = 25 * 1024 * 1024
SNIFF_BYTES = 16
MAX_FILENAME = 255

OnUploaded = Callable[[dict[str, Any]], Awaitable[None]]


def matches_signature(content_type: str, head: bytes) -> bool:
    """Whether ``head`` (an object's first bytes) starts the way ``content_type`` files do.

    Known binary types (PNG, JPEG, GIF, WebP, PDF) must carry their magic
    bytes; other types (text) are not sniffed and always match.
    """
    if content_type == "image/png":
        return head.startswith(b"\x89PNG\r\n\x1a\n")
    if content_type == "image/jpeg":
        return head.startswith(b"\xff\xd8\xff")
    if content_type == "image/gif":
        return head.startswith((b"GIF87a", b"GIF89a"))
    if content_type == "image/webp":
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    if content_type == "application/pdf":
        return head.startswith(b"%PDF-")
    return True


def _clean_filename(filename: str) -> str:
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    return base.strip()


def _error(field: str, msg: str, type_: str) -> dict[str, Any]:
    return {"loc": ["body", field], "msg": msg, "type": type_}


class FileService:
    """Presigned uploads and downloads with verification, in the current tenant.

    Flow: :meth:`create_upload` records a ``pending`` file and returns where
    to send the bytes; the client uploads straight to storage; then
    :meth:`complete` checks the stored object against what was declared
    (size, type, magic bytes), checksums it and marks it ``processed``.

    Args:
        storage: Where the bytes live.
        database: The database holding the ``files`` table.
        allowed_types: Media types that may be uploaded.
        max_size: Largest upload in bytes.
        url_ttl: Seconds presigned URLs stay valid (``Settings.file_url_ttl``).
        on_uploaded: Awaited once per file when it is processed, with
            ``{"id", "tenant_id", "key", "filename", "content_type", "size", "sha256"}``
            (the kit connects it to ``tenantkit_on_file_uploaded`` and a job).
    """

    def __init__(
        self,
        storage: Storage,
        database: Database,
        *,
        allowed_types: Iterable[str] = DEFAULT_ALLOWED_TYPES,
        max_size: int = DEFAULT_MAX_SIZE,
        url_ttl: int = 300,
        on_uploaded: OnUploaded | None = None,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1 byte")
        if url_ttl < 1:
            raise ValueError("url_ttl must be at least 1 second")
        self.storage = storage
        self.database = database
        self.allowed_types = frozenset(t.strip().lower() for t in allowed_types)
        self.max_size = max_size
        self.url_ttl = url_ttl
        self.on_uploaded = on_uploaded

    def __repr__(self) -> str:
        return f"FileService(storage={self.storage!r}, max_size={self.max_size}, url_ttl={self.url_ttl})"

    @staticmethod
    def _tenant_id() -> uuid.UUID:
        tenant_id = current_tenant_id()
        if tenant_id is None:
            raise TenantScopeError("FileService needs a tenant in context (tenant_context())")
        return tenant_id

    async def create_upload(
        self, filename: str, content_type: str, size: int, visibility: str = "private"
    ) -> tuple[FileObject, PresignedUpload]:
        """Record a pending file and presign its upload.

        Args:
            filename: The client's file name (display only, never part of the key).
            content_type: One of ``allowed_types``; the upload must carry exactly it.
            size: The exact length in bytes, 1 to ``max_size``.
            visibility: ``"private"`` or ``"public"``.

        Returns:
            The new ``pending`` file and where to upload it.

        Raises:
            ValidationError: one entry per invalid argument (422).
        """
        tenant_id = self._tenant_id()
        errors: list[dict[str, Any]] = []
        display = _clean_filename(filename) if isinstance(filename, str) else ""
        if not display:
            errors.append(_error("filename", "Give the file a name.", "missing"))
        elif len(display) > MAX_FILENAME:
            errors.append(_error("filename", f"At most {MAX_FILENAME} characters.", "string_too_long"))
        media_type = content_type.strip().lower() if isinstance(content_type, str) else ""
        if media_type not in self.allowed_types:
            allowed = ", ".join(sorted(self.allowed_types))
            message = f"Not an allowed type; use one of: {allowed}."
            errors.append(_error("content_type", message, "content_type_not_allowed"))
        if not isinstance(size, int) or isinstance(size, bool):
            errors.append(_error("size", "Must be an integer.", "int_type"))
        elif size < 1:
            errors.append(_error("size", "Must be at least 1 byte.", "greater_than_equal"))
        elif size > self.max_size:
            errors.append(_error("size", f"Must be at most {self.max_size} bytes.", "less_than_equal"))
        if visibility not in FILE_VISIBILITIES:
            errors.append(_error("visibility", "Must be 'private' or 'public'.", "literal_error"))
        if errors:
            raise ValidationError(errors)

        file = FileObject(
            tenant_id=tenant_id,
            id=uuid.uuid4(),
            filename=display,
            content_type=media_type,
            size=size,
            visibility=visibility,
            key=new_key(tenant_id),
            status="pending",
            created_at=utcnow(),
        )
        upload = await self.storage.presign_upload(
            file.key, content_type=media_type, size=size, expires_in=self.url_ttl
        )
        async with self.database.session() as session, session.begin():
            session.add(file)
        return file, upload

    async def get(self, file_id: uuid.UUID) -> FileObject:
        """The current tenant's file ``file_id``.

        Raises:
            NotFoundError: no such file in this tenant (404).
        """
        tenant_id = self._tenant_id()
        async with self.database.session() as session:
            file = await scoped_get(session, FileObject, file_id)
        if file is None:
            raise NotFoundError("File not found.")
        if not file.key.startswith(f"t/{tenant_id}/"):  # belt and braces: never another tenant's object
            raise TenantScopeError("file key outside its tenant's prefix")
        return file

    async def _transition(self, file_id: uuid.UUID, source: str, **values: Any) -> bool:
        """Move the file from ``source`` to new values; ``True`` if this call won."""
        statement = (
            update(FileObject)
            .where(FileObject.id == file_id, FileObject.status == source)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        async with self.database.session() as session, session.begin():
            result = await session.execute(statement)
        return isinstance(result, CursorResult) and result.rowcount == 1

    async def _reject(self, file: FileObject, source: str, reason: str) -> NoReturn:
        if await self._transition(file.id, source, status="rejected"):  # the winner cleans up
            try:
                await self.storage.delete(file.key)
            except Exception:
                logger.exception("could not delete rejected upload", extra={"file_id": str(file.id)})
            logger.warning("upload rejected", extra={"file_id": str(file.id), "reason": reason})
        raise ConflictError(f"The upload was rejected: {reason}.")

    async def complete(self, file_id: uuid.UUID) -> FileObject:
        """Verify the uploaded object, checksum it and mark the file ``processed``.

        The object is first copied on the storage side to a fresh key that no
        upload URL or form names; that copy is what is verified, checksummed
        and served, and the upload's own object is deleted. Whatever is sent
        to the upload URL afterwards never changes what the file serves.

        Idempotent: completing a processed file returns it unchanged, and
        ``on_uploaded`` runs once per file (by the call that marks it processed).

        Raises:
            NotFoundError: no such file in this tenant (404).
            ConflictError: the object is missing ("upload not found"; the file
                stays pending), or it does not match the declared size, type
                or magic bytes (the file is rejected and the object deleted) (409).
        """
        file = await self.get(file_id)
        if file.status == "processed":
            return file
        if file.status == "rejected":
            raise ConflictError("The upload was rejected.")
        if file.status == "pending":
            final = new_key(file.tenant_id)
            if not await self.storage.copy(file.key, final):
                current = await self.get(file_id)
                if current.status != "pending":  # a concurrent call completed it and removed the upload
                    return await self._process(file_id)
                raise ConflictError("Upload not found: send the file to the upload URL first.")
            reason = await self._mismatch(file, final)
            if reason is not None:
                await self._delete_quietly(final, file)
                await self._reject(file, "pending", reason)
            if await self._transition(file.id, "pending", status="uploaded", key=final, uploaded_at=utcnow()):
                await self._delete_quietly(file.key, file)  # the upload's object: nothing reads it now
            else:
                await self._delete_quietly(final, file)  # a concurrent call completed it first
        return await self._process(file.id)

    async def _mismatch(self, file: FileObject, key: str) -> str | None:
        """Why the object at ``key`` is not what ``file`` declared, or ``None`` if it is."""
        info = await self.storage.head(key)
        if info is None or info.size != file.size:
            return "size differs from the declared size"
        if (info.content_type or "").strip().lower() != file.content_type:
            return "content type differs from the declared type"
        head = await self.storage.read_prefix(key, SNIFF_BYTES)
        if not matches_signature(file.content_type, head):
            return "content does not match the declared type"
        return None

    async def _delete_quietly(self, key: str, file: FileObject) -> None:
        try:
            await self.storage.delete(key)
        except Exception:
            logger.exception("could not delete an upload's object", extra={"file_id": str(file.id)})

    async def _process(self, file_id: uuid.UUID) -> FileObject:
        file = await self.get(file_id)
        if file.status != "uploaded":
            return file  # processed (or rejected) by a concurrent call
        digest = hashlib.sha256()
        length = 0
        async for chunk in self.storage.read(file.key):
            digest.update(chunk)
            length += len(chunk)
        if length != file.size:
            await self._reject(file, "uploaded", "size differs from the declared size")
        sha256 = digest.hexdigest()
        won = await self._transition(file.id, "uploaded", status="processed", sha256=sha256)
        file = await self.get(file_id)
        if won and self.on_uploaded is not None:
            event = {
                "id": str(file.id),
                "tenant_id": str(file.tenant_id),
                "key": file.key,
                "filename": file.filename,
                "content_type": file.content_type,
                "size": file.size,
                "sha256": sha256,
            }
            try:
                await self.on_uploaded(event)
            except Exception:
                logger.exception("on_uploaded failed", extra={"file_id": str(file.id)})
        return file

    @staticmethod
    def summary(file: FileObject) -> dict[str, Any]:
        """What the client declared about ``file``, and its status."""
        return {
            "id": str(file.id),
            "filename": file.filename,
            "content_type": file.content_type,
            "size": file.size,
            "visibility": file.visibility,
            "status": file.status,
        }

    async def describe(self, file: uuid.UUID | FileObject) -> dict[str, Any]:
        """The file's metadata plus where to read it (pass the object when it is already loaded).

        Private files get ``download_url`` (presigned, expires after
        ``url_ttl``); public ones get ``url`` (stable). Either is ``None``
        until the upload is verified.

        Raises:
            NotFoundError: no such file in this tenant (404).
        """
        if not isinstance(file, FileObject):
            file = await self.get(file)
        data: dict[str, Any] = {
            **self.summary(file),
            "sha256": file.sha256,
            "created_at": file.created_at.isoformat(),
            "uploaded_at": file.uploaded_at.isoformat() if file.uploaded_at else None,
        }
        readable = file.status in ("uploaded", "processed")
        if file.visibility == "public":
            data["url"] = await self.storage.public_url(file.key) if readable else None
        else:
            data["download_url"] = (
                await self.storage.presign_download(
                    file.key,
                    expires_in=self.url_ttl,
                    filename=file.filename,
                    content_type=file.content_type,
                )
                if readable
                else None
            )
        return data
