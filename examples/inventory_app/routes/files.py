"""``/files``: thin routes over tenantkit's :class:`~tenantkit.files.FileService` (``kit.files``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from starlette.requests import Request
from starlette.responses import Response

from inventory_app.routes.common import kit_of, path_id
from inventory_app.schemas import FileOut, FileUploadOut, file_upload_body
from tenantkit import json_response, parse_body
from tenantkit.files import DEFAULT_ALLOWED_TYPES, DEFAULT_MAX_SIZE
from tenantkit.openapi import describe
from tenantkit.rbac import requires_permissions

__all__ = ["complete_upload", "create_upload", "get_file", "upload_endpoint"]

TAGS = ["files"]


def upload_endpoint(
    allowed_types: Iterable[str] = DEFAULT_ALLOWED_TYPES, max_size: int = DEFAULT_MAX_SIZE
) -> Callable[[Request], Awaitable[Response]]:
    """``POST /files/uploads`` for a file service accepting ``allowed_types`` up to ``max_size`` bytes.

    Its body model (and so the document) lists the allowed content types as an enum.
    """
    body_model = file_upload_body(allowed_types, max_size)

    @describe(
        summary="Start a presigned upload", body=body_model, response=FileUploadOut, status=201, tags=TAGS
    )
    @requires_permissions("files.create")
    async def create_upload(request: Request) -> Response:
        """Record a pending file and answer where to send its bytes."""
        body = await parse_body(request, body_model)
        file, upload = await kit_of(request).files.create_upload(
            body.filename, body.content_type, body.size, body.visibility
        )
        return json_response({**kit_of(request).files.summary(file), "upload": upload.to_dict()}, 201)

    return create_upload


#: ``POST /files/uploads`` with tenantkit's default allow-list and size limit.
create_upload = upload_endpoint()


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
