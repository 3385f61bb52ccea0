"""Replay every route of an app as tenant A against tenant B's resources, and report leaks.

The check walks the route contract (:func:`tenantkit.routing.walk_routes`),
collects tenant B's resource ids by creating resources as B through the app's
own creation routes (``POST`` declared ``status=201``, bodies generated from
the declared body model by :func:`tenantkit.testing.bodies.example_body`) and
by listing B's collections, then sends every non-public route as tenant A's
ADMIN with B's ids in the path (and in id fields of the body). A response
leaks when:

* it is a ``2xx`` to A on B's id while the same route answers an unknown id
  (the *control* request) with an error: A reached B's resource;
* it carries one of B's ids or B's marker (written into every string B
  created) that A's request did not itself contain: B's data reached A.

Ids visible to both tenants before either created anything (built-in roles,
global catalogues) are treated as shared, not as B's.
"""

from __future__ import annotations

import fnmatch
import functools
import itertools
import json
import re
import secrets
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute

from tenantkit.routing import RouteEntry, plain_path, walk_routes
from tenantkit.testing.bodies import example_body

if TYPE_CHECKING:
    import httpx

__all__ = ["IsolationReport", "Leak", "TenantUser", "check_isolation", "register_tenant"]

_PARAM = re.compile(r"\{([^}:]+)(?::[^}]+)?\}")
_ORDER = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass
class TenantUser:
    """A tenant and its ADMIN, registered over HTTP through the app itself.

    Attributes:
        label: ``"a"`` or ``"b"``.
        email: The ADMIN's email.
        password: The ADMIN's password.
        user_id: The ADMIN's user id.
        tenant_id: The tenant's id.
        tenant_slug: The tenant's slug.
        marker: A tag written into every string this tenant's generated bodies carry.
        headers: ``Authorization`` header of the current access token.
    """

    label: str
    email: str
    password: str
    user_id: str
    tenant_id: str
    tenant_slug: str
    marker: str
    headers: dict[str, str] = field(default_factory=dict)

    async def login(self, client: httpx.AsyncClient) -> None:
        """Sign in again (after a replayed route ended this user's session)."""
        response = await client.post("/auth/login", json={"email": self.email, "password": self.password})
        if response.status_code != 200:
            raise AssertionError(
                f"tenant {self.label} cannot sign in: {response.status_code} {response.text}"
            )
        self.headers = {"Authorization": f"Bearer {response.json()['access_token']}"}


async def register_tenant(
    client: httpx.AsyncClient, label: str, *, password: str | None = None
) -> TenantUser:
    """Register a new tenant with its ADMIN through ``POST /auth/register`` and sign in.

    Args:
        client: A client of the running app.
        label: A short lowercase name (``"a"``), part of the email and the marker.
        password: The ADMIN's password (a random one by default).
    """
    password = password or secrets.token_urlsafe(16)
    marker = f"tk{label}{secrets.token_hex(4)}"
    email = f"{marker}@example.com"
    response = await client.post(
        "/auth/register",
        json={"email": email, "password": password, "tenant_name": f"Tenant {label.upper()} {marker}"},
    )
    if response.status_code != 201:
        raise AssertionError(f"cannot register tenant {label}: {response.status_code} {response.text}")
    data = response.json()
    user = TenantUser(
        label=label,
        email=email,
        password=password,
        user_id=str(data["user"]["id"]),
        tenant_id=str(data["tenant"]["id"]),
        tenant_slug=str(data["tenant"]["slug"]),
        marker=marker,
    )
    await user.login(client)
    return user


@dataclass(frozen=True)
class Leak:
    """One response that crossed tenants.

    Attributes:
        method: HTTP method.
        url: The URL tenant A requested.
        route: The route's path template.
        status: The status A got.
        reason: What crossed.
    """

    method: str
    url: str
    route: str
    status: int
    reason: str

    def __str__(self) -> str:
        return f"{self.method} {self.url} -> {self.status}: {self.reason}"


@dataclass
class IsolationReport:
    """What the replay did and found.

    Attributes:
        leaks: Responses that crossed tenants (empty when isolated).
        requests: Requests tenant A sent.
        replayed: ``"METHOD /template"`` of every route replayed.
        untested: Routes with a path parameter no id of B's was found for.
        created: ``"METHOD /template"`` of the creation routes that made B's resources.
        not_created: Creation routes whose generated body the app refused (status).
        b_ids: How many of B's ids were collected.
    """

    leaks: list[Leak] = field(default_factory=list)
    requests: int = 0
    replayed: list[str] = field(default_factory=list)
    untested: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    not_created: dict[str, int] = field(default_factory=dict)
    b_ids: int = 0

    @property
    def ok(self) -> bool:
        """No leak found."""
        return not self.leaks

    def summary(self) -> str:
        """A readable account: leaks first, then coverage."""
        lines = [f"{len(self.leaks)} leak(s) in {self.requests} requests over {len(self.replayed)} routes"]
        lines += [f"  LEAK {leak}" for leak in self.leaks]
        lines.append(f"  tenant B resources: {self.b_ids} ids, created through {self.created or 'no route'}")
        if self.not_created:
            lines.append(f"  creation refused (pass a body): {self.not_created}")
        if self.untested:
            lines.append(f"  no id of B's for: {self.untested}")
        return "\n".join(lines)

    def assert_clean(self) -> None:
        """Raise ``AssertionError`` with :meth:`summary` when anything leaked."""
        if self.leaks:
            raise AssertionError(self.summary())


class _Ids:
    """Ids and other identifying values seen in one tenant's responses."""

    def __init__(self) -> None:
        self.by_collection: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.by_key: dict[str, set[str]] = defaultdict(set)

    def collect(self, template: str, data: Any) -> None:
        collection = template.rsplit("/", 1)[0] if template.endswith("}") else template
        top = [data] if isinstance(data, dict) else []
        lists = [data] if isinstance(data, list) else []
        if isinstance(data, dict):
            lists += [value for value in data.values() if isinstance(value, list)]
        for obj in top + [item for items in lists for item in items if isinstance(item, dict)]:
            for key, value in obj.items():
                if _scalar(value):
                    self.by_collection[collection][key].add(str(value))
        self._walk(data)

    def _walk(self, data: Any) -> None:
        if isinstance(data, dict):
            for key, value in data.items():
                if _id_key(key) and _scalar(value):
                    self.by_key[key].add(str(value))
                self._walk(value)
        elif isinstance(data, list):
            for item in data:
                self._walk(item)

    def all(self) -> set[str]:
        return {value for values in self.by_key.values() for value in values if len(value) >= 8}


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and str(value) != ""


def _id_key(key: str) -> bool:
    return key == "id" or key.endswith("_id")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class _Checker:
    def __init__(
        self,
        client: httpx.AsyncClient,
        entries: Sequence[RouteEntry],
        a: TenantUser,
        b: TenantUser,
        bodies: Mapping[str, Any],
        max_ids: int,
    ) -> None:
        self.client, self.entries, self.a, self.b = client, entries, a, b
        self.bodies = bodies
        self.max_ids = max_ids
        self.ids = _Ids()
        self.shared: set[str] = set()
        self.report = IsolationReport()

    async def send(self, user: TenantUser, method: str, url: str, body: Any) -> httpx.Response:
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        response = await self.client.request(method, url, headers=user.headers, **kwargs)
        if response.status_code == 401:  # a replayed route ended the session: sign in again
            await user.login(self.client)
            response = await self.client.request(method, url, headers=user.headers, **kwargs)
        if user is self.a:
            self.report.requests += 1
        return response

    def candidates(self, name: str, template: str = "") -> list[str]:
        """B's values for a path parameter or body field called ``name``."""
        found: list[str] = []
        if name in {"tenant", "tenant_id"}:
            found.append(self.b.tenant_id)
        if name == "user_id":
            found.append(self.b.user_id)
        if template and "{" + name in template:
            prefix = template[: template.index("{" + name)].rstrip("/")
            # The collection itself, else what was created below it (``/files/uploads``).
            related = (
                [prefix]
                if prefix in self.ids.by_collection
                else sorted(c for c in self.ids.by_collection if c.startswith(prefix + "/") and "{" not in c)
            )
            for collection in related:
                fields = self.ids.by_collection[collection]
                found += sorted(fields.get(name) or fields.get("id") or ())
        if name != "id" and _id_key(name):
            found += sorted(self.ids.by_key.get(name, ()))
            stem = name[:-3]
            for collection, fields in sorted(self.ids.by_collection.items()):
                if collection.rsplit("/", 1)[-1] in {stem, stem + "s", stem + "es"}:
                    found += sorted(fields.get("id", ()))
        unique = [value for value in dict.fromkeys(found) if value not in self.shared]
        return unique[: self.max_ids]

    def first(self, name: str, template: str = "") -> str | None:
        """B's first value for ``name``, or ``None``."""
        found = self.candidates(name, template)
        return found[0] if found else None

    def body_for(self, entry: RouteEntry, method: str, user: TenantUser, ids: Any) -> Any:
        for key in (f"{method} {plain_path(entry.path)}", plain_path(entry.path)):
            if key in self.bodies:
                return self.bodies[key]
        if entry.spec.body is None:
            return None
        return example_body(entry.spec.body, marker=user.marker, ids=ids)

    async def harvest(self, user: TenantUser, into: _Ids) -> None:
        for entry, method in self.routes(("GET",)):
            if not _PARAM.search(entry.path):
                response = await self.send(user, method, entry.path, None)
                if response.is_success:
                    into.collect(entry.path, _json(response))

    async def create_as_b(self) -> None:
        creators = [(e, m) for e, m in self.routes(("POST", "PUT")) if e.spec.status == 201]
        pending = sorted(creators, key=lambda em: (len(_PARAM.findall(em[0].path)), em[0].path))
        for _ in range(3):
            still: list[tuple[RouteEntry, str]] = []
            for entry, method in pending:
                url = self.fill(entry.path, functools.partial(self.first, template=entry.path))
                if url is None:
                    still.append((entry, method))
                    continue
                body = self.body_for(entry, method, self.b, self.first)
                response = await self.send(self.b, method, url, body)
                key = f"{method} {plain_path(entry.path)}"
                if response.is_success:
                    self.ids.collect(entry.path, _json(response))
                    self.report.created.append(key)
                    self.report.not_created.pop(key, None)
                else:
                    self.report.not_created[key] = response.status_code
                    still.append((entry, method))
            if len(still) == len(pending):
                break
            pending = still
        await self.harvest(self.b, self.ids)
        for entry, method in self.routes(("GET",)):
            if _PARAM.search(entry.path):
                for url in self.urls(entry.path)[:1]:
                    response = await self.send(self.b, method, url, None)
                    if response.is_success:
                        self.ids.collect(entry.path, _json(response))

    @staticmethod
    def fill(template: str, value: Callable[[str], str | None]) -> str | None:
        missing = False

        def one(match: re.Match[str]) -> str:
            nonlocal missing
            chosen = value(match.group(1))
            missing = missing or chosen is None
            return str(chosen or "")

        url = _PARAM.sub(one, template)
        return None if missing else url

    def urls(self, template: str) -> list[str]:
        names = _PARAM.findall(template)
        options = [self.candidates(name, template) for name in names]
        urls = []
        for combo in itertools.islice(itertools.product(*options), self.max_ids):
            url = self.fill(template, dict(zip(names, combo, strict=True)).get)
            if url is not None:
                urls.append(url)
        return urls

    def unknown(self, template: str, name: str) -> str | None:
        """A value like B's for ``name`` that names nothing (for the control request)."""
        found = self.candidates(name, template)
        return _unknown_like(found[0]) if found else None

    def routes(self, methods: Iterable[str]) -> list[tuple[RouteEntry, str]]:
        wanted = set(methods)
        pairs = [(e, m) for e in self.entries for m in e.methods if m in wanted]
        return sorted(pairs, key=lambda em: (_ORDER.get(em[1], 1), em[0].path))

    async def replay(self) -> None:
        needles = self.ids.all() | {self.b.marker, self.b.email, self.b.tenant_id, self.b.user_id}
        needles -= self.shared
        for entry, method in self.routes(_ORDER):
            key = f"{method} {plain_path(entry.path)}"
            self.report.replayed.append(key)
            carried: set[str] = set()

            def b_ids(name: str, carried: set[str] = carried) -> str | None:
                found = self.candidates(name)
                carried.update(found[:1])
                return found[0] if found else None

            if _PARAM.search(entry.path):
                urls = self.urls(entry.path)
                if not urls:
                    self.report.untested.append(key)
                    continue
                control_url = self.fill(entry.path, functools.partial(self.unknown, entry.path)) or entry.path
            else:
                urls, control_url = [entry.path], entry.path
            body = self.body_for(entry, method, self.a, b_ids)
            control_body = self.body_for(entry, method, self.a, functools.partial(self.unknown, ""))
            crossing = bool(carried) or urls[0] != entry.path
            control = await self.send(self.a, method, control_url, control_body) if crossing else None
            for url in urls:
                response = await self.send(self.a, method, url, body)
                sent = url + json.dumps(body)
                if control is not None and response.is_success and not control.is_success:
                    self.report.leaks.append(
                        Leak(
                            method,
                            url,
                            entry.path,
                            response.status_code,
                            "answered tenant A on tenant B's resource "
                            f"(an unknown id gets {control.status_code})",
                        )
                    )
                text = response.text
                seen = sorted(n for n in needles if n in text and n not in sent)
                if seen:
                    self.report.leaks.append(
                        Leak(
                            method,
                            url,
                            entry.path,
                            response.status_code,
                            f"tenant B's data in the body: {seen[:5]}",
                        )
                    )


def _unknown_like(value: str) -> str:
    """A value of the same kind as ``value`` that names nothing."""
    if _UUID.match(value):
        return str(uuid.uuid4())
    if value.isdigit():
        return str(10 ** (len(value) + 3) + 7)
    return f"zz{secrets.token_hex(4)}"


async def check_isolation(
    client: httpx.AsyncClient,
    routes: Iterable[BaseRoute],
    a: TenantUser,
    b: TenantUser,
    *,
    skip: Iterable[str] = (),
    bodies: Mapping[str, Any] | None = None,
    max_ids_per_param: int = 3,
) -> IsolationReport:
    """Replay every non-public route as tenant ``a`` against tenant ``b``'s resources.

    Args:
        client: An HTTP client speaking to the running app.
        routes: The app's routes (``app.routes``).
        a: The tenant that must see nothing of ``b``'s.
        b: The tenant whose resources are created and targeted.
        skip: Routes to leave out: ``"METHOD /template"`` or ``"/template"``, shell
            wildcards allowed (``"* /admin/*"``).
        bodies: Bodies to send instead of generated ones, by ``"METHOD /template"``
            or ``"/template"`` (used both to create B's resources and in A's replay).
        max_ids_per_param: How many of B's ids to try per route.
    """
    patterns = list(skip)

    def kept(entry: RouteEntry) -> bool:
        if entry.spec.public or not (entry.spec.secured or entry.spec.tenant_bound):
            return False
        keys = [entry.path, *(f"{m} {entry.path}" for m in entry.methods)]
        return not any(fnmatch.fnmatchcase(k, p) for k in keys for p in patterns)

    entries = [e for e in walk_routes(routes) if kept(e)]
    checker = _Checker(client, entries, a, b, bodies or {}, max_ids_per_param)
    seen_by_a, seen_by_b = _Ids(), _Ids()
    await checker.harvest(a, seen_by_a)
    await checker.harvest(b, seen_by_b)
    identities = {a.tenant_id, a.user_id, b.tenant_id, b.user_id}
    checker.shared = (seen_by_a.all() & seen_by_b.all()) - identities
    for collection, fields in seen_by_a.by_collection.items():
        for key, values in fields.items():
            checker.shared |= (
                values & seen_by_b.by_collection.get(collection, {}).get(key, set())
            ) - identities
    await checker.create_as_b()
    checker.report.b_ids = len(checker.ids.all() - checker.shared)
    await checker.replay()
    return checker.report
