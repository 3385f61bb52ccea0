"""On PostgreSQL a refresh rotation is one statement in one round trip.

An asyncpg query logger on every connection the kit checks out records what
each connection sends. The connection that rotated the token sent exactly one
query during the refresh: the CTE that spends the token and inserts its
successor (no ``BEGIN``, no ``COMMIT``, no second statement). The duplicate
inside the grace window and reuse after it keep their meaning.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.helpers import Api, assert_problem, record_queries


@pytest.fixture
def backend() -> str:
    return "postgres"


async def test_a_rotation_is_one_statement_in_one_round_trip(api: Api) -> None:
    await api.register("one@example.com")
    first = await api.login("one@example.com")
    sent = record_queries(api.kit.database)
    await asyncio.sleep(0)
    response = await api.client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert response.status_code == 200
    await asyncio.sleep(0.05)  # loggers run through call_soon
    rotating = [queries for queries in sent.values() if any("refresh_tokens" in q for q in queries)]
    assert len(rotating) == 1, sent
    assert len(rotating[0]) == 1, rotating[0]
    statement = rotating[0][0]
    assert statement.lstrip().startswith("WITH spent AS")
    assert "UPDATE refresh_tokens" in statement and "INSERT INTO refresh_tokens" in statement

    # the duplicate within the grace window: the same pair again
    duplicate = await api.client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert duplicate.status_code == 200
    assert duplicate.json()["refresh_token"] == response.json()["refresh_token"]
    assert duplicate.json()["access_token"] == response.json()["access_token"]
    assert (await api.client.get("/auth/me", headers=api.bearer(duplicate.json()))).status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"refresh_grace_seconds": 0}])
async def test_without_grace_the_duplicate_revokes_the_family(
    kit_factory: Any, settings_factory: Any, settings_overrides: dict[str, int]
) -> None:
    from tenantkit.mail import MemoryMailer
    from tests.helpers import serve

    kit = kit_factory(settings_factory(**settings_overrides), mailer=MemoryMailer())
    async with serve(kit.build_app(), base_url="https://testserver") as client:
        api = Api(client, kit, MemoryMailer())
        await api.register("nograce@example.com")
        first = await api.login("nograce@example.com")
        second = (await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
        body = assert_problem(
            await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]}), 401
        )
        assert body["type"].endswith("token-reuse")
        assert_problem(await client.get("/auth/me", headers=api.bearer(second)), 401)
