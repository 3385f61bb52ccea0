"""Starlette routes serving :class:`~tenantkit.files.local.LocalStorage`'s signed URLs.

``PUT {base}/{token}`` receives an upload, ``GET {base}/{token}`` answers a
download. The signed token is the only credential: these routes need no
session, tenant or CSRF token, exactly like S3 presigned URLs.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from tenantkit.errors import (
    BadRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    UnsupportedMediaTypeError,
    problem_response,
)
from tenantkit.files.local import LocalStorage
from tenantkit.files.storage import content_disposition
from tenantkit.openapi import describe

__all__ = ["DOWNLOAD_HEADERS", "local_file_routes"]

DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}
"""Headers every local download carries, besides ``Content-Disposition: attachment``."""


def local_file_routes(storage: LocalStorage) -> list[BaseRoute]:
    """The upload and download routes for ``storage``, at ``storage.base_url_path``.

    Mount them on the application (``routes=[*kit.routes, *local_file_routes(storage)]``)
    and keep them outside authentication, tenant resolution and CSRF checks:
    the URL's signature is the credential. Errors are problem+json through
    tenantkit's exception handlers.

    Args:
        storage: The local storage whose URLs to serve.
    """

    @describe(
        summary="Upload through a signed URL",
        body_media_type="*/*",
        status=204,
        responses={
            400: "Chunked, or not exactly the signed size.",
            403: "Invalid or expired URL.",
            411: "No Content-Length.",
            413: "Larger than the signed size.",
            415: "Not the signed content type.",
        },
        tags=["files"],
        public=True,
    )
    async def upload(request: Request) -> Response:
        grant = storage.verify(request.path_params["token"], "PUT")
        if grant.size is None or grant.content_type is None:  # every PUT URL signs both
            raise PermissionDeniedError("This file URL is invalid or has expired.")
        if "transfer-encoding" in request.headers:
            raise BadRequestError("Send the upload with a Content-Length, not chunked.")
        length = request.headers.get("content-length", "")
        if not (length.isascii() and length.isdigit()):
            return problem_response(
                411,
                "Send the upload with a Content-Length header.",
                title="Length Required",
                type_="length-required",
            )
        if int(length) > grant.size:
            raise PayloadTooLargeError(f"The upload must be exactly {grant.size} bytes.")
        if int(length) != grant.size:
            raise BadRequestError(f"The upload must be exactly {grant.size} bytes.")
        if request.headers.get("content-type", "").strip() != grant.content_type:
            raise UnsupportedMediaTypeError(f"The upload must be sent as {grant.content_type}.")
        await storage.write(grant.key, request.stream(), size=grant.size, content_type=grant.content_type)
        return Response(status_code=204)

    @describe(
        summary="Download through a signed URL",
        media_type="application/octet-stream",
        responses={403: "Invalid or expired URL.", 404: "The file does not exist."},
        tags=["files"],
        public=True,
    )
    async def download(request: Request) -> Response:
        grant = storage.verify(request.path_params["token"], "GET")
        info = await storage.head(grant.key)
        if info is None:
            raise NotFoundError("The file does not exist.")
        headers = dict(DOWNLOAD_HEADERS)
        if grant.filename:
            headers["Content-Disposition"] = content_disposition(grant.filename)
        else:
            headers["Content-Disposition"] = "attachment"
        if grant.expires_at is not None:
            headers["Cache-Control"] = "private, no-store"
        media_type = grant.content_type or info.content_type or "application/octet-stream"
        return FileResponse(storage.path_for(grant.key), headers=headers, media_type=media_type)

    path = f"{storage.base_url_path}/{{token}}"
    return [
        Route(path, upload, methods=["PUT"], name="tenantkit_file_upload"),
        Route(path, download, methods=["GET"], name="tenantkit_file_download"),
    ]
