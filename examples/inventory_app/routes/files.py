"""``/files``: thin routes over tenantkit's :class:`~tenantkit.files.FileService` (``kit.files``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from inventory_app.routes.common import kit_of, path_id
from inventory_app.schemas import FileOut, FileUploadIn, FileUploadOut
from tenantkit import json_response, parse_body
from tenantkit.openapi import describe
from tenantkit.rbac import requires_permissions

__all__ = ["complete_upload", "create_upload", "get_file"]

TAGS = ["files"]


@describe(
    summary="Start a presigned upload", body=FileUploadIn, response=FileUploadOut, status=201, tags=TAGS
)
@requires_permissions("files.create")
async def create_upload(request: Request) -> Response:
    """Record a pending file and answer where to send its bytes."""
    body = await parse_body(request, FileUploadIn)
    file, upload = await kit_of(request).files.create_upload(
        body.filename, body.content_type, body.size, body.visibility
    )
    return json_response({**kit_of(request).files.summary(file), "upload": upload.to_dict()}, 201)


@describe(
    summary="Complete an upload",
    response=FileOut,
    responses={409: "the object is missing or does not match what was declared"},
    tags=TAGS,
)
@requires_permissions("files.create")
async def complete_upload(request: Request) -> Response:
    """Verify the uploaded object against what was declared and checksum it."""
    files = kit_of(request).files
    completed = await files.complete(path_id(request, what="File"))
    return json_response(await files.describe(completed))


@describe(summary="Get a file", response=FileOut, tags=TAGS)
@requires_permissions("files.read")
async def get_file(request: Request) -> Response:
    """Metadata plus a presigned download URL (private) or the public URL."""
    file_id = path_id(request, what="File")
    return json_response(await kit_of(request).files.describe(file_id))
