"""Tiny tenant-scoped models used only by the tenancy tests.

They live on their own declarative base (own ``MetaData``) so they never
leak into tenantkit's metadata or migrations.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKeyConstraint, MetaData, String, UniqueConstraint
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, foreign, mapped_column, relationship

from tenantkit.db.base import NAMING_CONVENTION, UTCDateTime
from tenantkit.db.engine import Database
from tenantkit.tenancy import TenantScoped


class TestBase(AsyncAttrs, DeclarativeBase):
    """Base of the test models (separate from ``tenantkit.db.Base``)."""

    __test__ = False
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime()}


class Project(TenantScoped, TestBase):
    __tablename__ = "tkt_projects"

    name: Mapped[str] = mapped_column(String(100))

    tasks: Mapped[list[Task]] = relationship(back_populates="project", order_by="Task.title")
    #: A soft reference on ``project_id`` only (no tenant in the join): only the
    #: ORM scoping keeps another tenant's notes out of this collection.
    notes: Mapped[list[Note]] = relationship(
        primaryjoin=lambda: Project.id == foreign(Note.project_id),
        viewonly=True,
        order_by="Note.body",
    )

    __table_args__ = (UniqueConstraint("tenant_id", "name"),)


class Task(TenantScoped, TestBase):
    __tablename__ = "tkt_tasks"

    project_id: Mapped[uuid.UUID]
    title: Mapped[str] = mapped_column(String(100))
    done: Mapped[bool] = mapped_column(default=False)

    project: Mapped[Project] = relationship(back_populates="tasks")

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "project_id"], ["tkt_projects.tenant_id", "tkt_projects.id"], ondelete="CASCADE"
        ),
    )


class Note(TenantScoped, TestBase):
    __tablename__ = "tkt_notes"

    project_id: Mapped[uuid.UUID]
    body: Mapped[str] = mapped_column(String(100))


TABLES = [Project.__tablename__, Task.__tablename__, Note.__tablename__]


async def create_tables(database: Database) -> None:
    """Create the test tables in ``database`` (only these tables)."""
    async with database.engine.begin() as connection:
        await connection.run_sync(TestBase.metadata.create_all)
