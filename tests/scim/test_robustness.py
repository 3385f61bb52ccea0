"""No input makes ``/scim/v2`` answer 5xx or anything but a SCIM document."""

from __future__ import annotations

import itertools

from tests.helpers import Api
from tests.scim.conftest import SCIM, Tenant

BODIES = [
    b"",
    b"null",
    b"[]",
    b"{}",
    b'"x"',
    b'{"Operations": "x"}',
    b'{"Operations": [{"op": "add"}]}',
    b'{"Operations": [{"op": "remove", "path": "members[value eq"}]}',
    b'{"Operations": [{"op": "remove", "path": "members[value eq \\"nobody\\"]"}]}',
    b'{"Operations": [{"op": "replace", "path": "emails[type eq \\"home\\"].value", "value": "a@b.c"}]}',
    b'{"Operations": [{"op": "Remove", "path": "members", "value": [{"value": 5}]}]}',
    b'{"Operations": [{"op": "replace", "value": [1, 2]}]}',
    b'{"userName": 5}',
    b'{"userName": ["a@b.c"]}',
    b'{"userName": "a@b.c", "active": "maybe"}',
    b'{"userName": "a@b.c", "emails": "x"}',
    b'{"userName": "a@b.c", "externalId": {"a": 1}}',
    b'{"userName": "' + b"a" * 400 + b'@b.c"}',
    b'{"displayName": {"a": 1}}',
    b'{"displayName": "Team_x", "members": "x"}',
    b'{"displayName": "Team_y", "members": [{"value": 5}]}',
    b'{"filter": 5, "startIndex": "x"}',
    b'{"filter": "userName eq \\"a\\"", "count": -1}',
    b'{"attributes": ["nope"]}',
]
QUERIES = [
    "filter=%00",
    "filter=userName%20eq%20%22%00%22",
    "filter=meta.created%20gt%20%22yesterday%22",
    "filter=" + "(" * 500,
    "count=abc",
    "startIndex=99999999999999999999",
    "attributes=nope",
    "excludedAttributes=",
    "sortBy=userName",
]


async def test_nothing_makes_scim_fail(api: Api, tenant: Tenant) -> None:
    user = await api.client.post("/scim/v2/Users", json={"userName": "fuzz@example.com"}, headers=tenant.scim)
    uid = user.json()["id"]
    paths = [
        "/scim/v2/Users",
        f"/scim/v2/Users/{uid}",
        "/scim/v2/Users/.search",
        "/scim/v2/Groups",
        "/scim/v2/Groups/USER",
        "/scim/v2/Groups/.search",
        "/scim/v2/Schemas",
        "/scim/v2/x/y/z",
    ]
    for path, method, body in itertools.product(paths, ["POST", "PUT", "PATCH"], BODIES):
        response = await api.client.request(method, path, content=body, headers=tenant.scim)
        assert response.status_code < 500, (method, path, body, response.text)
        assert response.headers["content-type"].startswith(SCIM), (method, path, body)
    for path, query in itertools.product(
        ["/scim/v2/Users", f"/scim/v2/Users/{uid}", "/scim/v2/Groups"], QUERIES
    ):
        response = await api.client.get(f"{path}?{query}", headers=tenant.scim)
        assert response.status_code < 500, (path, query, response.text)
        assert response.headers["content-type"].startswith(SCIM), (path, query)
    # The directory is intact: the user is still there and still a member.
    again = await api.client.get(f"/scim/v2/Users/{uid}", headers=tenant.scim)
    assert again.status_code == 200
