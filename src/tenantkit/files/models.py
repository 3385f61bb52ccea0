"""The ``files`` table: one row per upload, owned by a tenant."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKeyConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tenantkit.db.base import Base, utcnow
from tenantkit.db.scoping import TenantScoped

__all__ = ["FILE_STATUSES", "FILE_VISIBILITIES", "FileObject"]

FILE_STATUSES = ("pending", "uploaded", "processed", "rejected")
FILE_VISIBILITIES = ("private", "public")


class FileObject(TenantScoped, Base):
    """An uploaded (or announced) file. Primary key ``(tenant_id, id)``.

    Attributes:
        filename: The name the client gave; for display and downloads only,
            never part of ``key``.
        content_type: The declared (and verified) media type.
        size: The declared (and verified) length in bytes.
        visibility: ``"private"`` (presigned downloads) or ``"public"`` (stable URL).
        key: The object's storage key, ``t/<tenant_id>/<uuid>``, server generated.
        status: ``"pending"`` until completed, then ``"uploaded"`` and
            ``"processed"`` (checksummed), or ``"rejected"``.
        sha256: Hex SHA-256 of the bytes, once processed.
        created_at: When the upload was announced.
        uploaded_at: When the upload was verified.
    """

    __tablename__ = "files"

    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(BigInteger)
    visibility: Mapped[str] = mapped_column(String(16), default="private")
    key: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    uploaded_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        UniqueConstraint("tenant_id", "key"),
        CheckConstraint("status IN ('pending', 'uploaded', 'processed', 'rejected')", name="status"),
        CheckConstraint("visibility IN ('private', 'public')", name="visibility"),
        CheckConstraint("size >= 0", name="size"),
    )

    def __repr__(self) -> str:
        return f"FileObject(id={self.id!s}, status={self.status!r}, size={self.size!r})"
