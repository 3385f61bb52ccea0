"""Fail-closed ORM scoping of ``TenantScoped`` models, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import aliased, selectinload

from tenantkit import TenantKit, TenantRef, TenantScopeError, hookimpl, tenant_context
from tenantkit.db.engine import Database
from tenantkit.tenancy import is_unscoped, scoped_get, unscoped
from tests.tenancy.models import Note, Project, Task, create_tables


@dataclass
class World:
    """Two tenants with the same-looking data, plus one of B's notes aimed at A's project."""

    database: Database
    a: TenantRef
    b: TenantRef
    a_project: uuid.UUID
    b_project: uuid.UUID


def _tenant(slug: str) -> TenantRef:
    return TenantRef(id=uuid.uuid4(), slug=slug, name=slug.upper())


async def _seed(database: Database, tenant: TenantRef, *, name: str) -> uuid.UUID:
    with tenant_context(tenant):
        async with database.session() as session, session.begin():
            project = Project(name="alpha")
            project.tasks = [Task(title="shared title"), Task(title=f"{name} only")]
            session.add(project)
            await session.flush()
            session.add(Note(project_id=project.id, body=f"{name} note"))
            return project.id


class AuditSink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    @hookimpl
    def tenantkit_on_audit_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)


@pytest.fixture
async def kit(kit_factory: Callable[..., TenantKit]) -> AsyncIterator[TenantKit]:
    """A kit that is never started: the database is disposed here (shutdown would skip it)."""
    kit = kit_factory(plugins=[AuditSink()])
    yield kit
    await kit.database.dispose()


@pytest.fixture
async def world(kit: TenantKit) -> World:
    await create_tables(kit.database)
    a, b = _tenant("a"), _tenant("b")
    a_project = await _seed(kit.database, a, name="a")
    b_project = await _seed(kit.database, b, name="b")
    # B's note points at A's project id: only tenant scoping keeps it out of A's view.
    with tenant_context(b):
        async with kit.database.session() as session, session.begin():
            session.add(Note(project_id=a_project, body="b stray note"))
    return World(kit.database, a, b, a_project, b_project)


@pytest.fixture
def as_a(world: World) -> Iterator[TenantRef]:
    with tenant_context(world.a) as tenant:
        assert tenant is not None
        yield tenant


async def test_select_sees_only_the_current_tenant(world: World, as_a: TenantRef) -> None:
    async with world.database.session() as session:
        projects = (await session.scalars(select(Project))).all()
        assert [(p.tenant_id, p.id) for p in projects] == [(as_a.id, world.a_project)]
        titles = (await session.scalars(select(Task.title).order_by(Task.title))).all()
        assert titles == ["a only", "shared title"]
        assert await session.scalar(select(func.count()).select_from(Note)) == 1
        by_name = await session.scalars(select(Project).where(Project.name == "alpha"))
        assert len(by_name.all()) == 1


async def test_joins_are_scoped_on_every_side(world: World, as_a: TenantRef) -> None:
    async with world.database.session() as session:
        via_relationship = (
            await session.execute(select(Project.name, Task.title).join(Project.tasks).order_by(Task.title))
        ).all()
        assert [tuple(r) for r in via_relationship] == [("alpha", "a only"), ("alpha", "shared title")]
        # a join on the soft reference only: B's stray note would match A's project without scoping
        on_id_only = (
            await session.execute(
                select(Project.name, Note.body).join(Note, Note.project_id == Project.id).order_by(Note.body)
            )
        ).all()
        assert [tuple(r) for r in on_id_only] == [("alpha", "a note")]
        outer = (
            await session.execute(
                select(Note.body, Project.name).outerjoin(Project, Project.id == Note.project_id)
            )
        ).all()
        assert [tuple(r) for r in outer] == [("a note", "alpha")]


async def test_aliases_are_scoped(world: World, as_a: TenantRef) -> None:
    project_alias = aliased(Project)
    other = aliased(Project, name="other")
    async with world.database.session() as session:
        assert (await session.scalars(select(project_alias.id))).all() == [world.a_project]
        pairs = (
            await session.execute(
                select(project_alias.id, other.id).join(other, other.name == project_alias.name)
            )
        ).all()
        assert [tuple(p) for p in pairs] == [(world.a_project, world.a_project)]


async def test_subqueries_are_scoped(world: World, as_a: TenantRef) -> None:
    async with world.database.session() as session:
        # B's stray note names A's project: the IN-subquery must not see it
        strays = select(Note.project_id).where(Note.body == "b stray note")
        assert (await session.scalars(select(Project.name).where(Project.id.in_(strays)))).all() == []
        counted = select(func.count(Note.id)).where(Note.project_id == Project.id).scalar_subquery()
        assert (await session.execute(select(Project.name, counted))).one() == ("alpha", 1)
        exists = select(Task.id).where(Task.title == "b only").exists()
        assert (await session.scalars(select(Project.name).where(exists))).all() == []
        derived = select(Task.project_id, func.count().label("n")).group_by(Task.project_id).subquery()
        assert (await session.execute(select(derived.c.project_id, derived.c.n))).all() == [
            (world.a_project, 2)
        ]


async def test_lazy_relationship_loads_are_scoped(world: World, as_a: TenantRef) -> None:
    async with world.database.session() as session:
        project = await scoped_get(session, Project, world.a_project)
        assert project is not None
        notes = await project.awaitable_attrs.notes
        assert [n.body for n in notes] == ["a note"]
        tasks = await project.awaitable_attrs.tasks
        assert [t.title for t in tasks] == ["a only", "shared title"]
        task = tasks[0]
        session.expire(task, ["project"])
        assert (await task.awaitable_attrs.project).id == world.a_project


async def test_selectin_loads_are_scoped(world: World, as_a: TenantRef) -> None:
    async with world.database.session() as session:
        projects = (
            await session.scalars(
                select(Project).options(selectinload(Project.notes), selectinload(Project.tasks))
            )
        ).all()
        assert len(projects) == 1
        assert [n.body for n in projects[0].notes] == ["a note"]
        assert [t.title for t in projects[0].tasks] == ["a only", "shared title"]


async def test_lazy_load_of_an_object_loaded_unscoped_is_still_scoped(world: World, as_a: TenantRef) -> None:
    async with world.database.session() as session:
        with unscoped("test: load across tenants"):
            project = (await session.scalars(select(Project).where(Project.id == world.a_project))).one()
        # back in tenant A: the collection load must not carry B's stray note
        notes = await project.awaitable_attrs.notes
        assert [n.body for n in notes] == ["a note"]


async def test_get_of_another_tenants_id_is_none(world: World, as_a: TenantRef) -> None:
    async with world.database.session() as session:
        assert await session.get(Project, (world.b.id, world.b_project)) is None
        assert await session.get(Project, (as_a.id, world.b_project)) is None
        assert await scoped_get(session, Project, world.b_project) is None
        mine = await session.get(Project, (as_a.id, world.a_project))
        assert mine is not None and mine.name == "alpha"
        assert await scoped_get(session, Project, world.a_project) is mine


async def test_bulk_update_and_delete_touch_only_the_current_tenant(world: World, as_a: TenantRef) -> None:
    async with world.database.session() as session, session.begin():
        await session.execute(update(Task).where(Task.title == "shared title").values(done=True))
        await session.execute(update(Project).values(name="renamed"))
        await session.execute(delete(Note))
    with unscoped("test: check both tenants"):
        async with world.database.session() as session:
            done = (
                await session.execute(select(Task.tenant_id, Task.done).where(Task.title == "shared title"))
            ).all()
            assert {tuple(row) for row in done} == {(world.a.id, True), (world.b.id, False)}
            names = (await session.execute(select(Project.tenant_id, Project.name))).all()
            assert {tuple(row) for row in names} == {(world.a.id, "renamed"), (world.b.id, "alpha")}
            notes = (await session.scalars(select(Note.body).order_by(Note.body))).all()
            assert notes == ["b note", "b stray note"]


async def test_insert_fills_tenant_id(world: World, as_a: TenantRef) -> None:
    async with world.database.session() as session, session.begin():
        project = Project(name="new")
        session.add(project)
        await session.flush()
        assert project.tenant_id == as_a.id
    with tenant_context(world.b):
        async with world.database.session() as session:
            assert await scoped_get(session, Project, project.id) is None


async def test_inserting_another_tenants_object_is_refused(world: World, as_a: TenantRef) -> None:
    async with world.database.session() as session:
        session.add(Project(name="smuggled", tenant_id=world.b.id))
        with pytest.raises(TenantScopeError, match="another tenant"):
            await session.flush()
    with unscoped("test: nothing was written"):
        async with world.database.session() as session:
            assert await session.scalar(select(Project.id).where(Project.name == "smuggled")) is None


async def test_bulk_insert_fills_and_checks_tenant_id(world: World, as_a: TenantRef) -> None:
    async with world.database.session() as session, session.begin():
        await session.execute(insert(Project), [{"name": "bulk 1"}, {"name": "bulk 2"}])
        await session.execute(insert(Project).values(name="bulk 3"))
        await session.execute(insert(Project).values(name="bulk 4", tenant_id=as_a.id))
    async with world.database.session() as session:
        with unscoped("test: where did the rows go"):
            owners = (
                await session.execute(
                    select(Project.name, Project.tenant_id).where(Project.name.like("bulk%"))
                )
            ).all()
    assert sorted(tuple(o) for o in owners) == [(f"bulk {i}", as_a.id) for i in range(1, 5)]
    refused = [
        (insert(Project), [{"name": "x", "tenant_id": world.b.id}]),
        (insert(Project).values(name="x", tenant_id=world.b.id), None),
        (insert(Project).values([{"name": "x", "tenant_id": world.b.id}]), None),
        (update(Project).values(tenant_id=world.b.id), None),
        (insert(Project).from_select(["name"], select(Project.name)), None),
    ]
    for statement, params in refused:
        async with world.database.session() as session:
            with pytest.raises(TenantScopeError):
                await session.execute(statement, params)
    with unscoped("test: nothing moved"):
        async with world.database.session() as session:
            assert (
                await session.scalar(select(func.count()).select_from(Project).where(Project.name == "x"))
                == 0
            )
            assert await session.scalar(select(func.count()).where(Project.tenant_id == world.b.id)) == 1


async def test_changing_another_tenants_object_is_refused(world: World, as_a: TenantRef) -> None:
    async with world.database.session() as session:
        with unscoped("test: load B's project"):
            foreign_project = (
                await session.scalars(select(Project).where(Project.id == world.b_project))
            ).one()
        foreign_project.name = "hijacked"
        with pytest.raises(TenantScopeError, match="another tenant"):
            await session.flush()
        await session.rollback()
        await session.delete(foreign_project)
        with pytest.raises(TenantScopeError, match="another tenant"):
            await session.flush()


async def test_no_tenant_in_context_fails_closed(world: World) -> None:
    with tenant_context(None):
        async with world.database.session() as session:
            with pytest.raises(TenantScopeError):
                await session.execute(select(Project))
            with pytest.raises(TenantScopeError):
                await session.execute(select(Task.title).join(Task.project))
            with pytest.raises(TenantScopeError):
                await session.get(Project, (world.a.id, world.a_project))
            with pytest.raises(TenantScopeError):
                await session.execute(update(Task).values(done=True))
            with pytest.raises(TenantScopeError):
                await session.execute(delete(Note))
            with pytest.raises(TenantScopeError):
                await session.execute(insert(Project), [{"name": "orphan", "tenant_id": world.a.id}])
            with pytest.raises(TenantScopeError):
                await session.scalar(select(func.count()).select_from(Note))
            with pytest.raises(TenantScopeError):
                await session.scalar(select(func.count(Note.id)))
            session.add(Project(name="orphan", tenant_id=world.a.id))
            with pytest.raises(TenantScopeError):
                await session.flush()


async def test_unscoped_sees_all_and_is_logged_and_audited(
    kit: TenantKit, caplog: pytest.LogCaptureFixture
) -> None:
    [sink] = [p for p in kit.plugins.get_plugins() if isinstance(p, AuditSink)]
    await create_tables(kit.database)
    a, b = _tenant("a"), _tenant("b")
    await _seed(kit.database, a, name="a")
    await _seed(kit.database, b, name="b")
    tenancy_logger = logging.getLogger("tenantkit.tenancy")
    tenancy_logger.addHandler(caplog.handler)  # the kit's logging setup may stop propagation
    try:
        with caplog.at_level(logging.WARNING, logger="tenantkit.tenancy"), tenant_context(None):
            assert not is_unscoped()
            actor = uuid.uuid4()
            with kit.unscoped("nightly report", actor_id=actor):
                assert is_unscoped()
                async with kit.database.session() as session:
                    owners = set((await session.scalars(select(Project.tenant_id))).all())
                    notes = await session.scalar(select(func.count()).select_from(Note))
            assert not is_unscoped()
    finally:
        tenancy_logger.removeHandler(caplog.handler)
    assert owners == {a.id, b.id}
    assert notes == 2
    logged = [
        r for r in caplog.records if r.name == "tenantkit.tenancy" and r.getMessage() == "unscoped access"
    ]
    assert logged and logged[0].reason == "nightly report"  # type: ignore[attr-defined]
    for _ in range(100):
        if sink.events:
            break
        await asyncio.sleep(0.01)
    [event] = [e for e in sink.events if e["action"] == "tenancy.unscoped"]
    assert event["data"] == {"reason": "nightly report"}
    assert event["actor_id"] == str(actor)


def test_unscoped_needs_a_reason() -> None:
    with pytest.raises(ValueError), unscoped(""):
        pass  # pragma: no cover
