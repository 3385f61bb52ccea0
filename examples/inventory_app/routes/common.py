"""Helpers shared by the route modules: the kit, ids, queries, cursors, serialisation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from inventory_app.schemas import ListQuery
from tenantkit import TenantKit, current_principal, path_uuid
from tenantkit.http import parse_query as parse_list_query
from tenantkit.pagination import decode_cursor, encode_cursor

__all__ = [
    "decode_cursor",
    "encode_cursor",
    "iso",
    "kit_of",
    "money",
    "paginate",
    "parse_query",
    "path_id",
    "principal_id",
]

T = TypeVar("T")


def kit_of(request: Request) -> TenantKit:
    """The kit serving ``request``."""
    kit: TenantKit = request.app.state.tenantkit
    return kit


def path_id(request: Request, name: str = "id", what: str = "Resource") -> uuid.UUID:
    """The UUID in the path; a malformed one is a 404 like an absent one."""
    return path_uuid(request, name, missing=f"{what} not found.")


def principal_id() -> uuid.UUID | None:
    """The caller's user id."""
    principal = current_principal()
    return principal.user_id if principal is not None else None


def parse_query(request: Request) -> ListQuery:
    """The list query parameters: 422 naming each bad one, 400 for a malformed cursor."""
    return parse_list_query(request, ListQuery)


def money(value: Decimal) -> str:
    """A decimal string with two places (``"19.99"``)."""
    return f"{value:.2f}"


def iso(value: datetime) -> str:
    """ISO 8601, UTC, with offset."""
    return value.astimezone(UTC).isoformat()


async def paginate(
    session: AsyncSession,
    statement: Select[Any],
    model: type[T],
    query: ListQuery,
    *,
    newest_first: bool = False,
) -> tuple[list[T], str | None]:
    """One page of ``statement`` in ``(created_at, id)`` order, and the cursor of the next page."""
    created_at, id_ = model.created_at, model.id  # type: ignore[attr-defined]
    if query.cursor:
        after_created, after_id = decode_cursor(query.cursor)
        if newest_first:
            statement = statement.where(
                or_(created_at < after_created, and_(created_at == after_created, id_ < after_id))
            )
        else:
            statement = statement.where(
                or_(created_at > after_created, and_(created_at == after_created, id_ > after_id))
            )
    order = (created_at.desc(), id_.desc()) if newest_first else (created_at.asc(), id_.asc())
    rows: list[T] = list((await session.scalars(statement.order_by(*order).limit(query.limit + 1))).all())
    next_cursor = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        last = rows[-1]
        next_cursor = encode_cursor(last.created_at, last.id)  # type: ignore[attr-defined]
    return rows, next_cursor
