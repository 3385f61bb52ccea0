"""S3 (and S3-compatible) storage through aiobotocore; needs ``tenantkit[s3]``.

Uploads are presigned ``POST`` policies whose conditions pin the exact
length (``content-length-range`` ``[size, size]``) and the exact
``Content-Type``, so S3 itself refuses anything else. Downloads are presigned
``GET`` URLs that make S3 answer with ``Content-Disposition: attachment`` and
the declared type.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal, Self

from tenantkit.errors import MissingDependencyError
from tenantkit.files.storage import ObjectInfo, PresignedUpload, content_disposition, validate_key

try:
    from aiobotocore.session import get_session
    from botocore.config import Config
    from botocore.exceptions import ClientError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("s3", "S3Storage") from exc

if TYPE_CHECKING:
    from types import TracebackType

    from tenantkit.settings import Settings

__all__ = ["S3Storage"]

_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Storage:
    """Objects in one S3 bucket, reached with presigned URLs.

    One aiobotocore client is opened on first use and kept until
    :meth:`close` (or the end of an ``async with`` block).

    Args:
        bucket: The bucket name.
        endpoint_url: For S3-compatible servers (MinIO, Ceph, R2...); ``None`` for AWS.
        access_key: Access key id (``None``: botocore's default credential chain).
        secret_key: Secret access key.
        region: The bucket's region.
        public_base_url: Base of :meth:`public_url` (a CDN or a public bucket
            website); by default the endpoint's own object URL.
        addressing_style: ``"path"`` or ``"virtual"``; default path style for
            a custom endpoint, AWS's choice otherwise.
        connect_timeout: Seconds to wait for a connection.
        read_timeout: Seconds to wait for a response.
    """

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str = "us-east-1",
        public_base_url: str | None = None,
        addressing_style: Literal["auto", "path", "virtual"] | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        if not bucket:
            raise ValueError("S3Storage needs a bucket name")
        self.bucket = bucket
        self.endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        self.region = region
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self._access_key = access_key
        self._secret_key = secret_key
        style = addressing_style or ("path" if endpoint_url else "auto")
        self._config = Config(
            signature_version="s3v4",
            s3={"addressing_style": style},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": 3, "mode": "standard"},
        )
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        """Build from ``TENANTKIT_S3_*`` settings.

        Raises:
            ValueError: ``TENANTKIT_S3_BUCKET`` is not set.
        """
        if not settings.s3_bucket:
            raise ValueError("TENANTKIT_S3_BUCKET is required for S3 storage")
        return cls(
            settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            access_key=settings.s3_access_key.get_secret_value() if settings.s3_access_key else None,
            secret_key=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
            region=settings.s3_region,
        )

    def __repr__(self) -> str:
        return (
            f"S3Storage(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r}, "
            f"region={self.region!r}, secret_key='**********')"
        )

    async def _get_client(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                stack = contextlib.AsyncExitStack()
                self._client = await stack.enter_async_context(
                    get_session().create_client(
                        "s3",
                        endpoint_url=self.endpoint_url,
                        region_name=self.region,
                        aws_access_key_id=self._access_key,
                        aws_secret_access_key=self._secret_key,
                        config=self._config,
                    )
                )
                self._stack = stack
        return self._client

    async def close(self) -> None:
        """Close the client (a later call opens a new one)."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist yet."""
        client = await self._get_client()
        try:
            await client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _error_code(exc) not in _MISSING:
                raise
        options: dict[str, Any] = {}
        if self.region != "us-east-1":
            options["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            await client.create_bucket(Bucket=self.bucket, **options)
        except ClientError as exc:
            if _error_code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise

    async def presign_upload(
        self, key: str, *, content_type: str, size: int, expires_in: int
    ) -> PresignedUpload:
        """A presigned ``POST`` whose policy admits exactly ``size`` bytes of ``content_type``."""
        validate_key(key)
        client = await self._get_client()
        post = await client.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", size, size]],
            ExpiresIn=int(expires_in),
        )
        return PresignedUpload(
            url=str(post["url"]),
            method="POST",
            fields={str(name): str(value) for name, value in post["fields"].items()},
        )

    async def presign_download(self, key: str, *, expires_in: int, filename: str, content_type: str) -> str:
        """A presigned ``GET`` answered as an attachment named ``filename`` of ``content_type``."""
        validate_key(key)
        client = await self._get_client()
        url = await client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentDisposition": content_disposition(filename),
                "ResponseContentType": content_type,
                "ResponseCacheControl": "private, no-store",
            },
            ExpiresIn=int(expires_in),
        )
        return str(url)

    async def public_url(self, key: str) -> str:
        """The object's plain URL; the bucket (or CDN) must allow reading it."""
        validate_key(key)
        if self.public_base_url:
            return f"{self.public_base_url}/{key}"
        if self.endpoint_url:
            return f"{self.endpoint_url}/{self.bucket}/{key}"
        return f"https://{self.bucket}.s3.{self.region}.amazonaws.com/{key}"

    async def head(self, key: str) -> ObjectInfo | None:
        """``HEAD`` the object; ``None`` if it does not exist."""
        validate_key(key)
        client = await self._get_client()
        try:
            response = await client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in _MISSING:
                return None
            raise
        return ObjectInfo(
            size=int(response["ContentLength"]),
            content_type=response.get("ContentType"),
            etag=response.get("ETag"),
        )

    async def read_prefix(self, key: str, n: int) -> bytes:
        """The first ``n`` bytes, with a ranged ``GET`` (empty if missing or empty)."""
        validate_key(key)
        if n <= 0:
            return b""
        client = await self._get_client()
        try:
            response = await client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{n - 1}")
        except ClientError as exc:
            if _error_code(exc) in _MISSING or _error_code(exc) == "InvalidRange":
                return b""
            raise
        async with response["Body"] as body:
            data: bytes = await body.read()
        return data[:n]

    async def read(self, key: str, *, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        """Stream the object in chunks."""
        validate_key(key)
        client = await self._get_client()
        response = await client.get_object(Bucket=self.bucket, Key=key)
        async with response["Body"] as body:
            async for chunk in body.iter_chunks(chunk_size):
                yield chunk

    async def copy(self, source: str, destination: str) -> bool:
        """Server-side ``CopyObject`` (one version of ``source``, metadata and type kept)."""
        validate_key(source)
        validate_key(destination)
        client = await self._get_client()
        try:
            await client.copy_object(
                Bucket=self.bucket,
                Key=destination,
                CopySource={"Bucket": self.bucket, "Key": source},
                MetadataDirective="COPY",
            )
        except ClientError as exc:
            if _error_code(exc) in _MISSING:
                return False
            raise
        return True

    async def delete(self, key: str) -> None:
        """Delete the object (no error if missing)."""
        validate_key(key)
        client = await self._get_client()
        await client.delete_object(Bucket=self.bucket, Key=key)

    async def ping(self) -> None:
        """``HEAD`` the bucket; raises if it is unreachable or missing."""
        client = await self._get_client()
        await client.head_bucket(Bucket=self.bucket)
