"""``GET /auth/me`` holds the profile in process: a repeated request reads no database."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event, update

from tenantkit.db.models import User
from tests.helpers import Api, eventually


@contextlib.contextmanager
def counting_statements(api: Api) -> Iterator[list[str]]:
    """Every SQL statement the kit's engine sends while the block runs."""
    statements: list[str] = []
    engine = api.kit.database.engine.sync_engine

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def _settle(api: Api) -> None:
    """Let work started by earlier requests (audit rows, background tasks) finish first."""
    await api.kit.background.drain()
    await api.kit.audit_log.flush()


async def test_a_repeated_auth_me_does_no_database_query(api: Api) -> None:
    await api.register("profile@example.com")
    tokens = await api.login("profile@example.com")
    headers = api.bearer(tokens)
    first = await api.client.get("/auth/me", headers=headers)  # first sight may read
    assert first.status_code == 200, first.text
    await _settle(api)
    with counting_statements(api) as statements:
        for _ in range(3):
            again = await api.client.get("/auth/me", headers=headers)
            assert again.status_code == 200, again.text
            assert again.json() == first.json()
    assert statements == []


async def test_a_changed_email_shows_in_every_process_after_profile_changed(
    two_instances: tuple[Api, Any],
) -> None:
    api, other = two_instances
    body = await api.register("before@example.com")
    user_id = uuid.UUID(body["user"]["id"])
    headers = api.bearer(await api.login("before@example.com"))
    for client in (api.client, other):  # both processes hold the profile
        me = await client.get("/auth/me", headers=headers)
        assert me.json()["email"] == "before@example.com"

    async with api.kit.database.session() as session, session.begin():
        await session.execute(
            update(User)
            .where(User.id == user_id)
            .values(email="after@example.com")
            .execution_options(synchronize_session=False)
        )
    # Until told, the held profile is served (that is the point of holding it)...
    assert (await other.get("/auth/me", headers=headers)).json()["email"] == "before@example.com"
    await api.kit.accounts.profile_changed(user_id)

    async def probe() -> Any:
        response = await other.get("/auth/me", headers=headers)
        response.status_code = 200 if response.json()["email"] == "after@example.com" else 409
        return response

    assert (await eventually(probe, 200)).status_code == 200
    assert (await api.client.get("/auth/me", headers=headers)).json()["email"] == "after@example.com"
