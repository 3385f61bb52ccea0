"""A Redis Cluster master dies mid-run: 503 at worst, no revoked token let in, recovery without restart."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from tenantkit import Settings, TenantKit
from tenantkit.mail import MemoryMailer
from tests.helpers import Api, serve
from tests.services import private_redis_cluster


@pytest.mark.parametrize("backend", ["cluster"], indirect=True)
async def test_a_cluster_node_failing_over_never_admits_a_revoked_token_and_recovers(
    kit_factory: Callable[..., TenantKit], settings_factory: Callable[..., Settings]
) -> None:
    with private_redis_cluster() as cluster:  # its own cluster: the session's one stays whole
        kit = kit_factory(settings_factory(redis_cluster_nodes=cluster.nodes), mailer=MemoryMailer())
        async with serve(kit.build_app(), base_url="https://testserver") as client:
            api = Api(client, kit, MemoryMailer())
            await api.register("failover@example.com")
            alive = api.bearer(await api.login("failover@example.com"))
            revoked = api.bearer(await api.login("failover@example.com"))
            assert (await client.get("/auth/me", headers=revoked)).status_code == 200  # cached as live
            assert (await client.post("/auth/logout", headers=revoked)).status_code == 204

            async def statuses(headers: dict[str, str]) -> int:
                response = await client.get("/auth/me", headers=headers)
                assert response.status_code < 500 or response.status_code == 503, response.text
                return response.status_code

            cluster.kill_node(cluster.ports[0])
            seen: set[int] = set()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 4  # past cluster-node-timeout (2 s): the cluster is down
            while loop.time() < deadline:
                assert await statuses(revoked) in (401, 503)  # never let in
                seen.add(await statuses(alive))
                await asyncio.sleep(0.1)
            assert seen <= {200, 503}, seen

            cluster.start_node(cluster.ports[0])  # same port and nodes.conf: it takes its slots back
            cluster.wait_ok()
            deadline = loop.time() + 20
            while (status := await statuses(alive)) != 200:
                assert loop.time() < deadline, f"not recovered: {status}"
                await asyncio.sleep(0.2)
            assert await statuses(revoked) == 401
            assert await _login_works(client)
            while not kit.revocations.live:  # its sharded subscription came back by itself
                assert loop.time() < deadline + 10, "the revocation channel did not resubscribe"
                await asyncio.sleep(0.2)


async def _login_works(client: httpx.AsyncClient) -> bool:
    response = await client.post(
        "/auth/login", json={"email": "failover@example.com", "password": "correct horse battery"}
    )
    return response.status_code == 200
