"""The one page-cursor codec: keyset positions ``(created_at, id)`` as short strings.

A cursor is ``<microseconds since the Unix epoch>_<id>``: the row's timestamp in
UTC as 1 to 17 decimal digits, then its id as 32 hex digits (a UUID) or a decimal
integer (an integer key). The format is exactly what :data:`CURSOR_PATTERN`
(:data:`INT_CURSOR_PATTERN`) says, and every string the pattern matches decodes,
so the OpenAPI document states precisely which cursors are accepted; anything
else is a 400, never a database error. Clients should still treat a cursor as
opaque and only send back a ``next_cursor`` they were given.

Every list endpoint (audit events, dead letters, the example app's products and
orders) encodes and decodes its positions here.

Example:
    ```python
    from tenantkit.pagination import decode_cursor, encode_cursor

    token = encode_cursor(row.created_at, row.id)
    created_at, row_id = decode_cursor(token)  # BadRequestError (400) when malformed
    ```
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar, overload

from pydantic import Field, StringConstraints

from tenantkit.errors import BadRequestError

__all__ = [
    "CURSOR_MAX_LENGTH",
    "CURSOR_PATTERN",
    "INT_CURSOR_PATTERN",
    "CursorParam",
    "IntCursorParam",
    "decode_cursor",
    "encode_cursor",
]

#: A cursor of a table with UUID keys: microseconds since the epoch (at most 17 digits, so any
#: value is a valid timestamp before the year 5000), ``_``, the UUID's 32 hex digits.
CURSOR_PATTERN = r"^[0-9]{1,17}_[0-9A-Fa-f]{32}$"
#: A cursor of a table with integer keys: as above, with the key in decimal (at most 18 digits,
#: within ``bigint``).
INT_CURSOR_PATTERN = r"^[0-9]{1,17}_-?[0-9]{1,18}$"
#: The longest cursor accepted.
CURSOR_MAX_LENGTH = 50
_SHAPE = re.compile(CURSOR_PATTERN)
_INT_SHAPE = re.compile(INT_CURSOR_PATTERN)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_ABOUT = "`next_cursor` of the previous page; a cursor not of this form is a 400."
#: A ``cursor`` query parameter (UUID keys). The pattern is enforced, and
#: :func:`tenantkit.http.parse_query` answers a 400 (never a 422) for a malformed cursor,
#: as the HTTP contract says.
CursorParam = Annotated[
    str,
    StringConstraints(min_length=1, max_length=CURSOR_MAX_LENGTH, pattern=CURSOR_PATTERN),
    Field(description=_ABOUT),
]
#: A ``cursor`` query parameter of a table with integer keys.
IntCursorParam = Annotated[
    str,
    StringConstraints(min_length=1, max_length=CURSOR_MAX_LENGTH, pattern=INT_CURSOR_PATTERN),
    Field(description=_ABOUT),
]

IdT = TypeVar("IdT", uuid.UUID, int)

_INVALID = "The cursor is invalid; use next_cursor from a previous page."


def encode_cursor(created_at: datetime, row_id: uuid.UUID | int) -> str:
    """The cursor for the position after ``(created_at, row_id)``.

    Args:
        created_at: The row's timestamp (an aware datetime; naive ones are taken as UTC),
            from 1970 on.
        row_id: The row's id, a UUID or an integer key.

    Raises:
        ValueError: a timestamp before 1970 or an id no cursor can carry.
    """
    moment = created_at if created_at.tzinfo is not None else created_at.replace(tzinfo=UTC)
    micros = (moment - _EPOCH) // timedelta(microseconds=1)
    ident = row_id.hex if isinstance(row_id, uuid.UUID) else str(int(row_id))
    cursor = f"{micros}_{ident}"
    if micros < 0 or not (_SHAPE.fullmatch(cursor) or _INT_SHAPE.fullmatch(cursor)):
        raise ValueError("this position cannot be written as a cursor")
    return cursor


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
        BadRequestError: 400 for anything not of the form :func:`encode_cursor` produces.
    """
    shape = _INT_SHAPE if id_type is int else _SHAPE
    if not isinstance(cursor, str) or len(cursor) > CURSOR_MAX_LENGTH or not shape.fullmatch(cursor):
        raise BadRequestError(_INVALID)
    micros, _, ident = cursor.partition("_")
    when = _EPOCH + timedelta(microseconds=int(micros))
    row_id: uuid.UUID | int = int(ident) if id_type is int else uuid.UUID(hex=ident)
    return when, row_id
