"""``/tenant/sso`` over HTTP on both backends: permissions, sealing, domain claims, issuer checks."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, update

from tenantkit import Settings, TenantKit
from tenantkit.db.models import SsoDomain, TenantSso
from tenantkit.db.scoping import tenant_scope
from tenantkit.mail import MemoryMailer
from tests.helpers import Api, assert_problem, serve

SECRET = "s3cr3t-client-secret-value-ABC"


def config(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "issuer": "https://idp.acme.example",
        "client_id": "tenantkit-client",
        "client_secret": SECRET,
        "domains": ["acme.example"],
        "enforce": False,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


async def owner(api: Api, email: str, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    tenant = (await api.register(email, tenant_name=name))["tenant"]
    return tenant, api.bearer(await api.login(email))


async def sealed_of(api: Api, tenant_id: uuid.UUID) -> bytes:
    with tenant_scope(tenant_id):
        async with api.kit.database.session() as session:
            sealed = await session.scalar(
                select(TenantSso.client_secret_sealed).where(TenantSso.tenant_id == tenant_id)
            )
    assert sealed is not None
    return bytes(sealed)


async def claimed(api: Api) -> dict[str, uuid.UUID]:
    async with api.kit.database.session() as session:
        rows = await session.execute(select(SsoDomain.domain, SsoDomain.tenant_id))
        return {domain: tenant for domain, tenant in rows.all()}


async def test_crud_permissions_and_the_secret_never_shown(api: Api) -> None:
    tenant, admin = await owner(api, "alice@acme.example", "Acme")
    tid = uuid.UUID(tenant["id"])
    invited = await api.client.post(
        "/users/invitations", json={"email": "user@acme.example", "role": "USER"}, headers=admin
    )
    await api.register("user@acme.example", invite_token=invited.json()["invite_token"])
    user = api.bearer(await api.login("user@acme.example"))
    responses = []

    for method in ("GET", "PUT", "DELETE"):
        body = config() if method == "PUT" else None
        assert_problem(await api.client.request(method, "/tenant/sso", json=body), 401)
        assert_problem(await api.client.request(method, "/tenant/sso", json=body, headers=user), 403)
    assert_problem(await api.client.get("/tenant/sso", headers=admin), 404)
    assert_problem(await api.client.delete("/tenant/sso", headers=admin), 404)
    # the first configuration needs a secret
    missing = assert_problem(
        await api.client.put("/tenant/sso", json=config(client_secret=None), headers=admin), 422
    )
    assert missing["errors"][0]["loc"] == ["body", "client_secret"]  # type: ignore[index]
    assert await api.kit.sso.get(tid) is None

    created = await api.client.put("/tenant/sso", json=config(domains=["ACME.example."]), headers=admin)
    responses.append(created)
    assert created.status_code == 200, created.text
    assert created.headers["cache-control"] == "no-store"
    body = created.json()
    assert body == {
        "protocol": "oidc",
        "issuer": "https://idp.acme.example",
        "client_id": "tenantkit-client",
        "domains": ["acme.example"],
        "enforce": False,
        "has_client_secret": True,
        "updated_at": body["updated_at"],
    }
    shown = await api.client.get("/tenant/sso", headers=admin)
    responses.append(shown)
    assert shown.json() == body
    assert (await claimed(api)) == {"acme.example": tid}

    # the database holds only the sealed form
    sealed = await sealed_of(api, tid)
    assert SECRET.encode() not in sealed and len(sealed) > len(SECRET)
    provider = await api.kit.sso.for_slug(tenant["slug"])
    assert provider is not None and provider.client_secret == SECRET
    assert SECRET not in repr(provider)

    # no secret on a later PUT keeps the stored one
    kept = await api.client.put(
        "/tenant/sso",
        json=config(client_secret=None, client_id="other-client", domains=["acme.example", "acme.test"]),
        headers=admin,
    )
    responses.append(kept)
    assert kept.status_code == 200, kept.text
    assert kept.json()["client_id"] == "other-client"
    assert await sealed_of(api, tid) == sealed
    provider = await api.kit.sso.for_slug(tenant["slug"])
    assert provider is not None and provider.client_secret == SECRET
    assert provider.domains == ("acme.example", "acme.test")
    assert (await claimed(api)) == {"acme.example": tid, "acme.test": tid}

    changed = await api.client.put("/tenant/sso", json=config(client_secret="new-secret-2"), headers=admin)
    responses.append(changed)
    provider = await api.kit.sso.for_slug(tenant["slug"])
    assert provider is not None and provider.client_secret == "new-secret-2"
    assert (await claimed(api)) == {"acme.example": tid}  # acme.test released

    # a USER still cannot read it
    assert_problem(await api.client.get("/tenant/sso", headers=user), 403)
    removed = await api.client.delete("/tenant/sso", headers=admin)
    assert removed.status_code == 204
    assert_problem(await api.client.get("/tenant/sso", headers=admin), 404)
    assert_problem(await api.client.delete("/tenant/sso", headers=admin), 404)
    assert await claimed(api) == {}
    assert await api.kit.sso.for_slug(tenant["slug"]) is None

    for response in responses:
        assert SECRET not in response.text and "new-secret-2" not in response.text
        assert "client_secret" not in response.json()
    await api.kit.audit_log.flush()
    log = await api.client.get("/audit", headers=admin)
    assert log.status_code == 200, log.text
    actions = [item["action"] for item in log.json()["items"]]
    assert "tenant.sso_configured" in actions and "tenant.sso_removed" in actions
    assert SECRET not in log.text and "new-secret-2" not in log.text


async def test_a_sealed_secret_moved_to_another_tenant_does_not_open(api: Api) -> None:
    a, admin_a = await owner(api, "a@a-corp.example", "A corp")
    b, admin_b = await owner(api, "b@b-corp.example", "B corp")
    assert (
        await api.client.put("/tenant/sso", json=config(domains=["a-corp.example"]), headers=admin_a)
    ).status_code == 200
    assert (
        await api.client.put(
            "/tenant/sso", json=config(domains=["b-corp.example"], client_secret="b-secret"), headers=admin_b
        )
    ).status_code == 200
    a_id, b_id = uuid.UUID(a["id"]), uuid.UUID(b["id"])
    stolen = await sealed_of(api, a_id)
    with tenant_scope(b_id):
        async with api.kit.database.session() as session, session.begin():
            await session.execute(
                update(TenantSso).where(TenantSso.tenant_id == b_id).values(client_secret_sealed=stolen)
            )
    assert await api.kit.sso.for_slug(b["slug"]) is None  # fails closed
    provider = await api.kit.sso.for_slug(a["slug"])
    assert provider is not None and provider.client_secret == SECRET
    # GET still works and shows nothing secret
    shown = await api.client.get("/tenant/sso", headers=admin_b)
    assert shown.status_code == 200 and SECRET not in shown.text


@pytest.mark.parametrize(
    ("domain", "kind"),
    [
        ("*.acme.example", "value_error"),
        ("10.0.0.1", "value_error"),
        ("192.168.1.1.", "value_error"),
        ("[::1]", "value_error"),
        ("localhost", "value_error"),
        ("user@acme.example", "value_error"),
        ("acme.example:443", "value_error"),
        ("https://acme.example", "value_error"),
        ("exa mple.com", "value_error"),
        ("-bad.example", "value_error"),
        ("a" * 64 + ".example", "value_error"),
        ("", "too_short"),
        ("gmail.com", "public_mail_domain"),
        ("GMail.COM.", "public_mail_domain"),
        ("proton.me", "public_mail_domain"),
    ],
)
async def test_bad_domains_are_refused(api: Api, domain: str, kind: str) -> None:
    _, admin = await owner(api, "alice@acme.example", "Acme")
    response = await api.client.put(
        "/tenant/sso", json=config(domains=["acme.example", domain]), headers=admin
    )
    body = assert_problem(response, 422)
    errors: Any = body["errors"]
    assert errors[0]["loc"] == ["body", "domains", 1], errors
    assert errors[0]["type"] == kind
    assert await claimed(api) == {}


async def test_domain_list_rules(api: Api) -> None:
    _, admin = await owner(api, "alice@acme.example", "Acme")
    assert_problem(await api.client.put("/tenant/sso", json=config(domains=[]), headers=admin), 422)
    many = [f"d{i}.acme.example" for i in range(51)]
    assert_problem(await api.client.put("/tenant/sso", json=config(domains=many), headers=admin), 422)
    ok = await api.client.put(
        "/tenant/sso",
        json=config(domains=[*many[:47], "Bücher.Example", "xn--bcher-kva.example", "ACME.example"]),
        headers=admin,
    )
    assert ok.status_code == 200, ok.text
    domains = ok.json()["domains"]
    assert "xn--bcher-kva.example" in domains and domains.count("xn--bcher-kva.example") == 1
    assert "acme.example" in domains and len(domains) == 49


@pytest.mark.parametrize(
    "issuer",
    [
        "http://idp.acme.example",  # not https outside development
        "https://10.0.0.5",
        "https://127.0.0.1:8443",
        "https://169.254.169.254/latest",
        "https://localhost",
        "https://idp.internal",
        "https://2130706433",
        "https://[::1]",
        "https://user@idp.acme.example",
        "ftp://idp.acme.example",
        "https://idp.acme.example/?x=1",
        "not a url",
    ],
)
async def test_unsafe_issuers_are_refused(api: Api, issuer: str) -> None:
    _, admin = await owner(api, "alice@acme.example", "Acme")
    body = assert_problem(await api.client.put("/tenant/sso", json=config(issuer=issuer), headers=admin), 422)
    assert body["errors"][0]["loc"] == ["body", "issuer"]  # type: ignore[index]
    assert issuer not in str(body)


async def test_protocol_is_oidc_only_saml_reserved(api: Api) -> None:
    _, admin = await owner(api, "alice@acme.example", "Acme")
    body = assert_problem(
        await api.client.put("/tenant/sso", json=config(protocol="saml"), headers=admin), 422
    )
    assert body["errors"][0]["loc"] == ["body", "protocol"]  # type: ignore[index]
    ok = await api.client.put("/tenant/sso", json=config(protocol="oidc"), headers=admin)
    assert ok.status_code == 200 and ok.json()["protocol"] == "oidc"
    assert_problem(
        await api.client.put("/tenant/sso", json={**config(), "tenant_id": "x"}, headers=admin), 422
    )


async def test_http_issuer_and_allow_listed_hosts(
    kit_factory: Callable[..., TenantKit], settings_factory: Callable[..., Settings]
) -> None:
    kit = kit_factory(
        settings_factory(env="development", sso_allow_hosts="127.0.0.1,idp.localhost"), mailer=MemoryMailer()
    )
    async with serve(kit.build_app(), base_url="https://testserver") as client:
        api = Api(client, kit, MemoryMailer())
        _, admin = await owner(api, "alice@acme.example", "Acme")
        for issuer in (
            "http://127.0.0.1:9000",
            "http://idp.localhost:8080/realms/acme",
            "http://idp.acme.example",
        ):
            response = await client.put("/tenant/sso", json=config(issuer=issuer), headers=admin)
            assert response.status_code == 200, (issuer, response.text)
        assert_problem(
            await client.put("/tenant/sso", json=config(issuer="http://10.1.1.1"), headers=admin), 422
        )


async def test_a_domain_has_one_owner(api: Api) -> None:
    a, admin_a = await owner(api, "a@acme.example", "A")
    b, admin_b = await owner(api, "b@beta.example", "B")
    assert (await api.client.put("/tenant/sso", json=config(), headers=admin_a)).status_code == 200
    conflict = assert_problem(
        await api.client.put(
            "/tenant/sso", json=config(domains=["beta.example", "Acme.Example"]), headers=admin_b
        ),
        409,
    )
    assert conflict["domains"] == ["acme.example"]
    assert await api.kit.sso.get(uuid.UUID(b["id"])) is None  # nothing half-written
    assert await claimed(api) == {"acme.example": uuid.UUID(a["id"])}
    # released by A, B may claim it
    assert (
        await api.client.put("/tenant/sso", json=config(domains=["beta.example"]), headers=admin_a)
    ).status_code == 200
    taken = await api.client.put("/tenant/sso", json=config(domains=["acme.example"]), headers=admin_b)
    assert taken.status_code == 200, taken.text
    assert await claimed(api) == {"beta.example": uuid.UUID(a["id"]), "acme.example": uuid.UUID(b["id"])}


async def test_for_slug(api: Api) -> None:
    from tenantkit.admin import create_superadmin

    tenant, admin = await owner(api, "alice@acme.example", "Acme")
    assert await api.kit.sso.for_slug("no-such-tenant") is None
    assert await api.kit.sso.for_slug(tenant["slug"]) is None
    await api.client.put("/tenant/sso", json=config(enforce=True), headers=admin)
    provider = await api.kit.sso.for_slug(tenant["slug"].upper())
    assert provider is not None
    assert (provider.tenant_id, provider.tenant_slug) == (uuid.UUID(tenant["id"]), tenant["slug"])
    assert (provider.issuer, provider.client_id, provider.enforce) == (
        "https://idp.acme.example",
        "tenantkit-client",
        True,
    )
    assert provider.covers("bob@acme.example") and not provider.covers("bob@other.example")
    assert await api.kit.sso.for_slug(tenant["id"]) is None  # a slug, not an id
    assert await api.kit.sso.for_slug("../x") is None

    await create_superadmin(api.kit, "root@example.com", "root-password-1")
    root = api.bearer(await api.login("root@example.com", "root-password-1"))
    suspended = await api.client.patch(
        f"/admin/tenants/{tenant['id']}", json={"status": "suspended"}, headers=root
    )
    assert suspended.status_code == 200
    assert await api.kit.sso.for_slug(tenant["slug"]) is None


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_concurrent_claims_of_one_domain(api: Api) -> None:
    admins = []
    for name in ("one", "two", "three"):
        _, admin = await owner(api, f"admin@{name}.example", name)
        admins.append(admin)
    for round_ in range(5):
        shared = f"shared{round_}.example"
        bodies = [
            config(domains=[f"own{i}-{round_}.example", shared][:: 1 if i % 2 else -1])
            for i in range(len(admins))
        ]
        responses = await asyncio.gather(
            *(
                api.client.put("/tenant/sso", json=body, headers=admin)
                for body, admin in zip(bodies, admins, strict=True)
            )
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 409, 409], [r.text for r in responses]
        for response in responses:
            if response.status_code == 409:
                assert assert_problem(response, 409)["domains"] == [shared]
        owners = await claimed(api)
        assert shared in owners
        winner = next(i for i, r in enumerate(responses) if r.status_code == 200)
        # the winner's whole set is claimed; the losers' own domains were rolled back
        for i in range(len(admins)):
            assert (f"own{i}-{round_}.example" in owners) == (i == winner)
        for admin in admins:  # release for the next round
            await api.client.delete("/tenant/sso", headers=admin)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_under_row_level_security_as_the_app_role(
    kit_factory: Callable[..., TenantKit], settings_factory: Callable[..., Settings], pg_url: str
) -> None:
    from tenantkit.db.rls import APP_ROLE
    from tests.tenancy.test_rls_app_role import as_user

    kit = kit_factory(settings_factory(database_url=as_user(pg_url, APP_ROLE)), mailer=MemoryMailer())
    async with serve(kit.build_app(), base_url="https://testserver") as client:
        api = Api(client, kit, MemoryMailer())
        a, admin_a = await owner(api, "a@acme.example", "A")
        _, admin_b = await owner(api, "b@beta.example", "B")
        assert (
            await client.put("/tenant/sso", json=config(enforce=True), headers=admin_a)
        ).status_code == 200
        assert_problem(await client.put("/tenant/sso", json=config(), headers=admin_b), 409)
        assert (await client.get("/tenant/sso", headers=admin_a)).json()["domains"] == ["acme.example"]
        assert_problem(await client.get("/tenant/sso", headers=admin_b), 404)  # RLS: B sees no row of A
        provider = await kit.sso.for_slug(a["slug"])
        assert provider is not None and provider.client_secret == SECRET
        denied = await client.post(
            "/auth/login",
            json={"email": "a@acme.example", "password": api.passwords["a@acme.example"]},
            headers={"X-Tenant-ID": a["slug"]},
        )
        assert_problem(denied, 403)
        assert (await client.delete("/tenant/sso", headers=admin_a)).status_code == 204
        assert await claimed(api) == {}
