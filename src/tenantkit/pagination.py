"""The one page-cursor codec: keyset positions ``(created_at, id)`` as opaque strings.

A cursor is ``base64url(json([iso timestamp in UTC, id]))`` without padding.
Every list endpoint (audit events, dead letters, the example app's products
and orders) encodes and decodes its positions here, so a cursor is checked
the same way everywhere: anything :func:`encode_cursor` did not produce (bad
base64, bad JSON, a naive or out-of-range timestamp, an id of the wrong type)
is a 400, never a database error.

Example:
    ```python
    from tenantkit.pagination import decode_cursor, encode_cursor

    token = encode_cursor(row.created_at, row.id)
    created_at, row_id = decode_cursor(token)  # BadRequestError (400) when tampered with
    ```
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar, overload

from pydantic import Field

from tenantkit.errors import BadRequestError

__all__ = ["CURSOR_MAX_LENGTH", "CURSOR_PATTERN", "CursorParam", "decode_cursor", "encode_cursor"]

#: The longest cursor accepted (a UUID cursor is about 90 characters).
CURSOR_MAX_LENGTH = 512
#: What a cursor looks like: unpadded base64url.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
_SHAPE = re.compile(CURSOR_PATTERN)

#: A ``cursor`` query parameter. Its shape is documented; :func:`decode_cursor` checks it,
#: so any malformed cursor is a 400 (never a 422), as the HTTP contract says.
CursorParam = Annotated[
    str,
    Field(
        description="`next_cursor` of the previous page (opaque; a malformed cursor is a 400).",
        json_schema_extra={"minLength": 1, "maxLength": CURSOR_MAX_LENGTH, "pattern": CURSOR_PATTERN},
    ),
]

IdT = TypeVar("IdT", uuid.UUID, int)

_INVALID = "The cursor is invalid; use next_cursor from a previous page."
#: PostgreSQL's bigint, the widest integer key a cursor may name.
_BIGINT = 2**63 - 1


def encode_cursor(created_at: datetime, row_id: uuid.UUID | int) -> str:
    """An opaque cursor for the position after ``(created_at, row_id)``.

    Args:
        created_at: The row's timestamp (an aware datetime; naive ones are taken as UTC).
        row_id: The row's id, a UUID or an integer key.
    """
    moment = created_at if created_at.tzinfo is not None else created_at.replace(tzinfo=UTC)
    ident: str | int = row_id if isinstance(row_id, int) else str(row_id)
    raw = json.dumps([moment.astimezone(UTC).isoformat(), ident], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@overload
def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]: ...
@overload
def decode_cursor(cursor: str, id_type: type[IdT]) -> tuple[datetime, IdT]: ...
def decode_cursor(cursor: str, id_type: type[Any] = uuid.UUID) -> tuple[datetime, Any]:
    """The position a cursor names.

    Args:
        cursor: A value of ``next_cursor``.
        id_type: ``uuid.UUID`` (the default) or ``int`` for integer keys.

    Raises:
        BadRequestError: 400 for anything :func:`encode_cursor` did not produce.
    """
    if not isinstance(cursor, str) or len(cursor) > CURSOR_MAX_LENGTH or not _SHAPE.match(cursor):
        raise BadRequestError(_INVALID)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw.decode("utf-8"))
        if not isinstance(decoded, list) or len(decoded) != 2 or not isinstance(decoded[0], str):
            raise ValueError("shape")
        when = datetime.fromisoformat(decoded[0])
        if when.tzinfo is None:
            raise ValueError("naive timestamp")
        when = when.astimezone(UTC)
        ident = decoded[1]
        row_id: uuid.UUID | int
        if id_type is int:
            if isinstance(ident, bool) or not isinstance(ident, int) or not -_BIGINT - 1 <= ident <= _BIGINT:
                raise ValueError("id")
            row_id = ident
        else:
            if not isinstance(ident, str):
                raise ValueError("id")
            row_id = uuid.UUID(ident)
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise BadRequestError(_INVALID) from None
    return when, row_id
