"""Object storage for uploads: the ``Storage`` protocol, S3 and local backends, the file service.

``S3Storage`` needs ``tenantkit[s3]``; it is imported on first access, so the
rest of this package works without aiobotocore.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tenantkit.files.local import LocalGrant, LocalStorage
from tenantkit.files.models import FileObject
from tenantkit.files.routes import local_file_routes
from tenantkit.files.service import DEFAULT_ALLOWED_TYPES, DEFAULT_MAX_SIZE, FileService, matches_signature
from tenantkit.files.storage import (
    ObjectInfo,
    PresignedUpload,
    Storage,
    content_disposition,
    create_storage,
    is_valid_key,
    new_key,
    validate_key,
)

if TYPE_CHECKING:
    from tenantkit.files.s3 import S3Storage

__all__ = [
    "DEFAULT_ALLOWED_TYPES",
    "DEFAULT_MAX_SIZE",
    "FileObject",
    "FileService",
    "LocalGrant",
    "LocalStorage",
    "ObjectInfo",
    "PresignedUpload",
    "S3Storage",
    "Storage",
    "content_disposition",
    "create_storage",
    "is_valid_key",
    "local_file_routes",
    "matches_signature",
    "new_key",
    "validate_key",
]


def __getattr__(name: str) -> Any:
    if name == "S3Storage":
        from tenantkit.files.s3 import S3Storage

        return S3Storage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
