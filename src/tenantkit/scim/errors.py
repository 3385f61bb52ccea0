"""SCIM errors (RFC 7644 §3.12): ``urn:ietf:params:scim:api:messages:2.0:Error`` bodies."""

from __future__ import annotations

import orjson
from starlette.responses import Response

__all__ = ["SCIM_MEDIA_TYPE", "ScimError", "scim_response"]

SCIM_MEDIA_TYPE = "application/scim+json"
_ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimError(Exception):
    """A SCIM error answer.

    Args:
        status: The HTTP status.
        detail: A human-readable message (never a secret nor a stack trace).
        scim_type: The RFC 7644 ``scimType`` keyword (``invalidFilter``, ``uniqueness``...).
        headers: Extra response headers (``WWW-Authenticate``, ``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        detail: str,
        scim_type: str | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        """The error document (``status`` is a string, as RFC 7644 requires)."""
        body: dict[str, object] = {
            "schemas": [_ERROR_SCHEMA],
            "status": str(self.status),
            "detail": self.detail,
        }
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body

    def to_response(self) -> Response:
        return scim_response(self.body(), self.status, headers=self.headers)


def scim_response(data: object, status: int = 200, *, headers: dict[str, str] | None = None) -> Response:
    """``data`` as ``application/scim+json``."""
    return Response(orjson.dumps(data), status, headers=headers, media_type=SCIM_MEDIA_TYPE)
