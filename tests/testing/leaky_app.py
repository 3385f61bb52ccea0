"""A tiny Starlette app built with TenantKit, leaky on demand.

``create_app(leak=None)`` keeps tenants apart; ``leak="item"`` makes
``GET /notes/{id}`` forget the tenant filter (``unscoped``), ``leak="list"``
makes ``GET /notes`` list every tenant's notes, ``leak="delete"`` lets
``DELETE /notes/{id}`` remove another tenant's note.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import String, delete, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tenantkit import Database, NotFoundError, Settings, TenantKit, json_response, parse_body, unscoped
from tenantkit.db.scoping import TenantScoped
from tenantkit.openapi import describe
from tenantkit.rbac import requires_permissions


class NotesBase(DeclarativeBase):
    pass


class Note(TenantScoped, NotesBase):
    __tablename__ = "kit_test_notes"

    title: Mapped[str] = mapped_column(String(200))


class NoteIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)


class NoteOut(BaseModel):
    id: uuid.UUID
    title: str


def _out(note: Note) -> dict[str, Any]:
    return {"id": str(note.id), "title": note.title}


def _scope(leaky: bool) -> contextlib.AbstractContextManager[None]:
    return unscoped("this route forgot the tenant filter") if leaky else contextlib.nullcontext()


class NoteRoutes:
    def __init__(self, database: Database, leak: str | None) -> None:
        self.database = database
        self.leak = leak

    @describe(body=NoteIn, response=NoteOut, status=201)
    @requires_permissions("notes.write")
    async def create(self, request: Request) -> Response:
        body = await parse_body(request, NoteIn)
        async with self.database.session() as session, session.begin():
            note = Note(title=body.title)
            session.add(note)
        return json_response(_out(note), 201)

    @describe(response=NoteOut)
    @requires_permissions("notes.read")
    async def list(self, request: Request) -> Response:
        with _scope(self.leak == "list"):
            async with self.database.session() as session:
                notes = (await session.scalars(select(Note))).all()
        return json_response({"items": [_out(note) for note in notes]})

    @describe(response=NoteOut)
    @requires_permissions("notes.read")
    async def get(self, request: Request) -> Response:
        with _scope(self.leak == "item"):
            async with self.database.session() as session:
                note = await session.scalar(select(Note).where(Note.id == _id(request)))
        if note is None:
            raise NotFoundError("Note not found.")
        return json_response(_out(note))

    @describe(status=204)
    @requires_permissions("notes.write")
    async def delete(self, request: Request) -> Response:
        with _scope(self.leak == "delete"):
            async with self.database.session() as session, session.begin():
                result = await session.execute(delete(Note).where(Note.id == _id(request)))
        if not result.rowcount:  # type: ignore[attr-defined]
            raise NotFoundError("Note not found.")
        return Response(status_code=204)

    def routes(self) -> list[Route]:
        return [
            Route("/notes", self.list, methods=["GET"]),
            Route("/notes", self.create, methods=["POST"]),
            Route("/notes/{id}", self.get, methods=["GET"]),
            Route("/notes/{id}", self.delete, methods=["DELETE"]),
        ]


def _id(request: Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params["id"])
    except ValueError:
        raise NotFoundError("Note not found.") from None


def create_app(leak: str | None = None) -> Starlette:
    """The notes app on ``Settings.load()`` (the environment)."""
    kit = TenantKit(
        Settings.load(),
        autoload_plugins=False,
        permissions=[("notes.read", "Read notes"), ("notes.write", "Write notes")],
    )

    @contextlib.asynccontextmanager
    async def tables(app: Starlette) -> AsyncIterator[None]:
        async with kit.database.engine.begin() as connection:
            await connection.run_sync(NotesBase.metadata.create_all)
        yield

    return kit.build_app(routes=NoteRoutes(kit.database, leak).routes(), lifespan=tables)


def create_leaky_app() -> Starlette:
    """The app whose ``GET /notes/{id}`` leaks (for ``--tenantkit-app``)."""
    return create_app(leak="item")
