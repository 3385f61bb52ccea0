"""Stateful isolation: random interleavings of CRUD, bulk and raw SQL across three tenants.

Two hypothesis state machines keep a model of what every tenant owns
(``tenant -> {id: name}``) and check after each step that a tenant sees exactly
its own rows and never another tenant's:

* ``ScopedOrmMachine`` drives the Python API (``tenant_context`` + ORM on the
  test models, plus raw ``text()`` SQL) on SQLite and PostgreSQL. On PostgreSQL
  the ORM runs as the superuser owner (RLS bypassed, so only the ORM scoping
  protects it) and raw SQL runs as a plain role (so only RLS protects it).
* ``ProductsHttpMachine`` drives ``/products`` of the example inventory app
  over HTTP with three brands.

Hypothesis rules are synchronous: each test owns one event loop and runs each
rule's coroutine on it with ``run_until_complete``. The database (and the served
app) live for the whole test; every example starts with three fresh tenants, so
the rows of earlier examples are simply more "other tenants" to stay away from.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete, select, text, update
from sqlalchemy.engine import CursorResult

from tenantkit import Settings, TenantRef, TenantScopeError, tenant_context
from tenantkit.db.engine import Database
from tenantkit.db.rls import rls_statements
from tenantkit.tenancy import scoped_get, unscoped
from tests.tenancy.models import TABLES, Project, create_tables

T = TypeVar("T")

MACHINE_SETTINGS = settings(
    max_examples=15,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
TENANTS = 3
LABELS = st.sampled_from(["red", "green", "blue"])
WHO = st.integers(min_value=0, max_value=TENANTS - 1)


def _rowcount(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


@dataclass
class Ref:
    """A row created by the machine: its owner (tenant index) and id. Kept after deletion."""

    owner: int
    id: uuid.UUID


@dataclass
class Env:
    """What lives for the whole test: the loop and the databases (``raw`` is RLS-bound, or ``None``)."""

    loop: asyncio.AbstractEventLoop
    orm: Database
    raw: Database | None
    counter: Iterator[int] = field(default_factory=lambda: iter(range(1, 1_000_000)))

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)


@contextlib.contextmanager
def _event_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _with_user(url: str, user: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}@{rest.split('@', 1)[1]}"


@contextlib.asynccontextmanager
async def _databases(url: str) -> AsyncIterator[tuple[Database, Database | None]]:
    """The test tables in ``url``: the owner's database and, on PostgreSQL, a plain RLS-bound role's."""
    owner = Database(url)
    await create_tables(owner)
    if not url.startswith("postgresql"):
        try:
            yield owner, None
        finally:
            await owner.dispose()
        return
    role = f"tk_sm_{uuid.uuid4().hex[:10]}"
    tables = ", ".join(f'"{t}"' for t in TABLES)
    async with owner.engine.begin() as connection:
        for table in TABLES:
            for statement in rls_statements(table):
                await connection.execute(text(statement))
        await connection.execute(text(f"CREATE ROLE {role} LOGIN NOBYPASSRLS NOSUPERUSER"))
        await connection.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {role}"))
    app = Database(_with_user(url, role), pool_size=1, max_overflow=0, pool_timeout=10)
    try:
        yield owner, app
    finally:
        await app.dispose()
        async with owner.engine.begin() as connection:
            await connection.execute(text(f"DROP OWNED BY {role}"))
            await connection.execute(text(f"DROP ROLE {role}"))
        await owner.dispose()


class ScopedOrmMachine(RuleBasedStateMachine):
    """Three tenants share one table; each step acts as one of them through the Python API."""

    env: Env  # set on a subclass per test

    refs = Bundle("refs")

    def __init__(self) -> None:
        super().__init__()
        self.tenants = [
            TenantRef(id=uuid.uuid4(), slug=f"t{i}-{uuid.uuid4().hex[:6]}") for i in range(TENANTS)
        ]
        self.model: list[dict[uuid.UUID, str]] = [{} for _ in range(TENANTS)]

    # -- helpers -----------------------------------------------------------------------------

    def _name(self, label: str) -> str:
        return f"{label}-{next(self.env.counter)}"

    def _expected(self, who: int, ref: Ref) -> str | None:
        """What ``who`` should see for ``ref``: its name when ``who`` owns it and it is live."""
        return self.model[who].get(ref.id)

    def _act(self, who: int, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        async def inside() -> T:
            with tenant_context(self.tenants[who]):
                return await work()

        return self.env.run(inside())

    # -- rules -------------------------------------------------------------------------------

    @rule(target=refs, who=WHO, label=LABELS)
    def create(self, who: int, label: str) -> Ref:
        name = self._name(label)

        async def work() -> uuid.UUID:
            async with self.env.orm.session() as session, session.begin():
                project = Project(name=name)
                session.add(project)
                await session.flush()
                assert project.tenant_id == self.tenants[who].id
                return project.id

        project_id = self._act(who, work)
        self.model[who][project_id] = name
        return Ref(who, project_id)

    @rule(who=WHO, ref=refs)
    def read_by_id(self, who: int, ref: Ref) -> None:
        owner_id = self.tenants[ref.owner].id

        async def work() -> list[str | None]:
            async with self.env.orm.session() as session:
                by_scoped_get = await scoped_get(session, Project, ref.id)
                by_own_key = await session.get(Project, (self.tenants[who].id, ref.id))
                # naming the real owner in the primary key must not help either
                by_owner_key = await session.get(Project, (owner_id, ref.id))
                for found in (by_scoped_get, by_own_key, by_owner_key):
                    assert found is None or found.tenant_id == self.tenants[who].id
                return [p.name if p is not None else None for p in (by_scoped_get, by_own_key, by_owner_key)]

        expected = self._expected(who, ref)
        assert self._act(who, work) == [expected, expected, expected]

    @rule(who=WHO)
    def list_all(self, who: int) -> None:
        self._check_listing(who)

    @rule(who=WHO, ref=refs, label=LABELS, via_statement=st.booleans())
    def update_one(self, who: int, ref: Ref, label: str, via_statement: bool) -> None:
        name = self._name(label)

        async def work() -> bool:
            async with self.env.orm.session() as session, session.begin():
                if via_statement:
                    result = await session.execute(
                        update(Project)
                        .where(Project.id == ref.id)
                        .values(name=name)
                        .execution_options(synchronize_session=False)
                    )
                    return _rowcount(result) == 1
                project = await scoped_get(session, Project, ref.id)
                if project is None:
                    return False
                project.name = name
                return True

        changed = self._act(who, work)
        assert changed == (ref.id in self.model[who])
        if changed:
            self.model[who][ref.id] = name

    @rule(who=WHO, ref=refs, via_statement=st.booleans())
    def delete_one(self, who: int, ref: Ref, via_statement: bool) -> None:
        async def work() -> bool:
            async with self.env.orm.session() as session, session.begin():
                if via_statement:
                    result = await session.execute(
                        delete(Project)
                        .where(Project.id == ref.id)
                        .execution_options(synchronize_session=False)
                    )
                    return _rowcount(result) == 1
                project = await scoped_get(session, Project, ref.id)
                if project is None:
                    return False
                await session.delete(project)
                return True

        deleted = self._act(who, work)
        assert deleted == (ref.id in self.model[who])
        self.model[who].pop(ref.id, None)

    @rule(who=WHO, suffix=st.sampled_from(["+", "*"]))
    def bulk_update(self, who: int, suffix: str) -> None:
        """An UPDATE with no WHERE at all: it must stay inside the tenant."""

        async def work() -> int:
            async with self.env.orm.session() as session, session.begin():
                result = await session.execute(
                    update(Project)
                    .values(name=Project.name + suffix)
                    .execution_options(synchronize_session=False)
                )
                return _rowcount(result)

        assert self._act(who, work) == len(self.model[who])
        self.model[who] = {id_: name + suffix for id_, name in self.model[who].items()}

    @rule(who=WHO, label=LABELS)
    def bulk_delete(self, who: int, label: str) -> None:
        """A DELETE by a predicate that matches rows of every tenant."""

        async def work() -> int:
            async with self.env.orm.session() as session, session.begin():
                result = await session.execute(
                    delete(Project)
                    .where(Project.name.startswith(label + "-"))
                    .execution_options(synchronize_session=False)
                )
                return _rowcount(result)

        doomed = [id_ for id_, name in self.model[who].items() if name.startswith(label + "-")]
        assert self._act(who, work) == len(doomed)
        for id_ in doomed:
            del self.model[who][id_]

    @rule(who=WHO, ref=refs)
    def raw_select(self, who: int, ref: Ref) -> None:
        """Raw SQL (no ORM scoping): only RLS keeps other tenants out, so PostgreSQL only."""
        raw = self.env.raw
        if raw is None:
            return

        async def work() -> tuple[list[tuple[Any, ...]], list[str]]:
            async with raw.session() as session:
                rows = (await session.execute(text("SELECT tenant_id, id, name FROM tkt_projects"))).all()
                # a predicate naming the owner explicitly must find nothing unless the owner is us
                named = await session.scalars(
                    text("SELECT name FROM tkt_projects WHERE tenant_id = :t AND id = :i"),
                    {"t": self.tenants[ref.owner].id, "i": ref.id},
                )
                return [tuple(r) for r in rows], list(named.all())

        rows, named = self._act(who, work)
        assert {row[0] for row in rows} <= {self.tenants[who].id}
        assert {row[1]: row[2] for row in rows} == self.model[who]
        expected = self._expected(who, ref)
        assert named == ([] if expected is None else [expected])

    @rule(who=WHO, ref=refs, label=LABELS)
    def raw_update(self, who: int, ref: Ref, label: str) -> None:
        """Raw UPDATE by id: RLS lets it touch the row only when ``who`` owns it."""
        raw = self.env.raw
        if raw is None:
            return
        name = self._name(label)

        async def work() -> int:
            async with raw.session() as session, session.begin():
                result = await session.execute(
                    text("UPDATE tkt_projects SET name = :n WHERE id = :i"), {"n": name, "i": ref.id}
                )
                return _rowcount(result)

        touched = self._act(who, work)
        assert touched == (1 if ref.id in self.model[who] else 0)
        if touched:
            self.model[who][ref.id] = name

    @rule()
    def no_tenant_fails_closed(self) -> None:
        async def work() -> None:
            with tenant_context(None):
                async with self.env.orm.session() as session:
                    with pytest.raises(TenantScopeError):
                        await session.execute(select(Project))

        self.env.run(work())

    # -- invariants --------------------------------------------------------------------------

    def _check_listing(self, who: int) -> None:
        async def work() -> list[tuple[uuid.UUID, uuid.UUID, str]]:
            async with self.env.orm.session() as session:
                projects = (await session.scalars(select(Project))).all()
                return [(p.tenant_id, p.id, p.name) for p in projects]

        rows = self._act(who, work)
        assert {row[0] for row in rows} <= {self.tenants[who].id}
        assert len(rows) == len(self.model[who])
        assert {row[1]: row[2] for row in rows} == self.model[who]

    @invariant()
    def every_tenant_sees_exactly_its_rows(self) -> None:
        for who in range(TENANTS):
            self._check_listing(who)

    @invariant()
    def ground_truth_matches_the_model(self) -> None:
        """Read unscoped (as the owner): no step wrote into a row of another tenant."""
        ours = {t.id: i for i, t in enumerate(self.tenants)}

        async def work() -> list[tuple[uuid.UUID, uuid.UUID, str]]:
            with tenant_context(None), unscoped("test: state machine ground truth"):
                async with self.env.orm.session() as session:
                    rows = await session.execute(
                        select(Project.tenant_id, Project.id, Project.name).where(Project.tenant_id.in_(ours))
                    )
                    return [(r.tenant_id, r.id, r.name) for r in rows.all()]

        actual: list[dict[uuid.UUID, str]] = [{} for _ in range(TENANTS)]
        for tenant_id, id_, name in self.env.run(work()):
            actual[ours[tenant_id]][id_] = name
        assert actual == self.model


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_python_api_never_crosses_tenants(kind: str, request: pytest.FixtureRequest) -> None:
    url = str(request.getfixturevalue("pg_url" if kind == "postgres" else "sqlite_url"))
    with _event_loop() as loop:
        stack = contextlib.AsyncExitStack()
        orm, raw = loop.run_until_complete(stack.enter_async_context(_databases(url)))
        try:
            machine = type("Machine", (ScopedOrmMachine,), {"env": Env(loop, orm, raw)})
            run_state_machine_as_test(machine, settings=MACHINE_SETTINGS)
        finally:
            loop.run_until_complete(stack.aclose())


# -- HTTP: /products of the example app ------------------------------------------------------


@dataclass
class HttpEnv:
    """The served inventory app for the whole test, and the loop it runs on."""

    loop: asyncio.AbstractEventLoop
    client: httpx.AsyncClient
    counter: Iterator[int] = field(default_factory=lambda: iter(range(1, 1_000_000)))

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)


PASSWORD = "correct horse battery"


class ProductsHttpMachine(RuleBasedStateMachine):
    """Three brands act on ``/products``; another brand's product is always a 404."""

    env: HttpEnv

    refs = Bundle("product_refs")

    def __init__(self) -> None:
        super().__init__()
        self.headers: list[dict[str, str]] = []
        self.model: list[dict[str, str]] = [{} for _ in range(TENANTS)]

    @initialize()
    def brands(self) -> None:
        async def register(i: int) -> dict[str, str]:
            email = f"admin-{i}-{uuid.uuid4().hex[:8]}@example.com"
            client = self.env.client
            response = await client.post(
                "/auth/register", json={"email": email, "password": PASSWORD, "tenant_name": f"Brand {email}"}
            )
            assert response.status_code == 201, response.text
            response = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
            assert response.status_code == 200, response.text
            return {"Authorization": f"Bearer {response.json()['access_token']}"}

        self.headers = [self.env.run(register(i)) for i in range(TENANTS)]

    def _call(self, method: str, url: str, who: int, **kwargs: Any) -> httpx.Response:
        return self.env.run(self.env.client.request(method, url, headers=self.headers[who], **kwargs))

    @staticmethod
    def _assert_404(response: httpx.Response) -> None:
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith("application/problem+json")

    @rule(target=refs, who=WHO, label=LABELS)
    def create(self, who: int, label: str) -> Ref:
        n = next(self.env.counter)
        name = f"{label}-{n}"
        response = self._call(
            "POST", "/products", who, json={"sku": f"SKU-{n}", "name": name, "price": "1.00"}
        )
        assert response.status_code == 201, response.text
        product_id = uuid.UUID(response.json()["id"])
        self.model[who][str(product_id)] = name
        return Ref(who, product_id)

    @rule(who=WHO, ref=refs)
    def get(self, who: int, ref: Ref) -> None:
        response = self._call("GET", f"/products/{ref.id}", who)
        expected = self.model[who].get(str(ref.id))
        if expected is None:
            self._assert_404(response)
        else:
            assert response.status_code == 200, response.text
            assert response.json()["name"] == expected

    @rule(who=WHO, ref=refs, label=LABELS)
    def patch(self, who: int, ref: Ref, label: str) -> None:
        name = f"{label}-{next(self.env.counter)}"
        response = self._call("PATCH", f"/products/{ref.id}", who, json={"name": name})
        if str(ref.id) in self.model[who]:
            assert response.status_code == 200, response.text
            assert response.json()["name"] == name
            self.model[who][str(ref.id)] = name
        else:
            self._assert_404(response)

    @rule(who=WHO, ref=refs)
    def delete(self, who: int, ref: Ref) -> None:
        response = self._call("DELETE", f"/products/{ref.id}", who)
        if str(ref.id) in self.model[who]:
            assert response.status_code == 204, response.text
            del self.model[who][str(ref.id)]
        else:
            self._assert_404(response)

    @invariant()
    def each_brand_lists_only_its_products(self) -> None:
        if not self.headers:
            return
        for who in range(TENANTS):
            response = self._call("GET", "/products", who, params={"limit": 100})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["next_cursor"] is None
            assert {item["id"]: item["name"] for item in body["items"]} == self.model[who]


async def _hold_app(
    settings_: Settings, ready: asyncio.Future[httpx.AsyncClient], stop: asyncio.Event
) -> None:
    """Serve the app until ``stop``: the lifespan stays inside one task across all the rules."""
    from inventory_app.app import create_app, create_kit
    from tests.helpers import serve

    kit = create_kit(settings_, autoload_plugins=False)
    try:
        async with serve(create_app(kit)) as client:
            ready.set_result(client)
            await stop.wait()
    except BaseException as error:
        if not ready.done():
            ready.set_exception(error)
        raise


def test_http_products_never_cross_brands(settings_factory: Callable[..., Settings]) -> None:
    settings_ = settings_factory()
    with _event_loop() as loop:
        ready: asyncio.Future[httpx.AsyncClient] = loop.create_future()
        stop = asyncio.Event()
        holder = loop.create_task(_hold_app(settings_, ready, stop))
        try:
            client = loop.run_until_complete(ready)
            machine = type("Machine", (ProductsHttpMachine,), {"env": HttpEnv(loop, client)})
            run_state_machine_as_test(machine, settings=MACHINE_SETTINGS)
        finally:
            stop.set()
            loop.run_until_complete(holder)
