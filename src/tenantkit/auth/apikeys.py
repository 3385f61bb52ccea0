"""API keys (service accounts): ``tk_<public id>_<secret>``, tenant-owned, scoped, revocable at once.

* A key is shown once; only ``HMAC-SHA256(server key, key)`` is stored. A
  fast keyed hash is the right tool for a 256-bit random secret: no search
  can cover that space, so a slow password hash would only add latency to
  every request, and the server key means a copied table alone verifies
  nothing.
* A key acts in its tenant with its ``scopes``, narrowed at every request to
  what its creator still holds there (a creator removed or demoted takes
  their keys' rights with them).
* Verification is cached per process by public id; revoking a key
  invalidates that entry in every process through the store's publish channel,
  so a revoked key fails on its next request everywhere.
* ``last_used_at`` is recorded in memory and written in batches, never a
  write per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from tenantkit.cache import SyncedCache
from tenantkit.context import ApiKeyRef, Principal, TenantRef
from tenantkit.db.base import utcnow
from tenantkit.db.engine import Database
from tenantkit.db.models import ApiKey
from tenantkit.db.scoping import tenant_scope, unscoped
from tenantkit.digests import keyed_digest, new_prefixed_secret, prefixed_public_id
from tenantkit.errors import InvalidTokenError, NotFoundError, PermissionDeniedError, ValidationError
from tenantkit.events import Events
from tenantkit.rbac.registry import PermissionRegistry
from tenantkit.stores.base import Store

__all__ = ["API_KEY_PREFIX", "ApiKeys", "looks_like_api_key"]

logger = logging.getLogger("tenantkit.auth")

API_KEY_PREFIX = "tk_"


def looks_like_api_key(value: str) -> bool:
    """``tk_<16 hex>_<secret>``: a cheap shape check before any lookup."""
    return prefixed_public_id(value, API_KEY_PREFIX) is not None


@dataclass(frozen=True, slots=True)
class _Record:
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    digest: bytes
    scopes: tuple[str, ...]
    created_by: uuid.UUID
    expires_at: datetime | None
    revoked: bool


class ApiKeys:
    """Create, list, revoke and verify API keys.

    Args:
        database: Where keys live (tenant-owned rows under row-level security).
        store: Carries the verification cache's invalidations.
        digest_key: The server key of the stored digests.
        registry: Expands and checks scope patterns.
        events: Audit rows.
        flush_seconds: How often ``last_used_at`` is written.
    """

    def __init__(
        self,
        *,
        database: Database,
        store: Store,
        digest_key: bytes,
        registry: PermissionRegistry,
        events: Events,
        flush_seconds: float = 30.0,
    ) -> None:
        self.db = database
        self.digest_key = digest_key
        self.registry = registry
        self.events = events
        self.flush_seconds = flush_seconds
        self.cache: SyncedCache[_Record | None] = SyncedCache(store, "api-keys", self._load, ttl=300)
        self._used: dict[uuid.UUID, tuple[uuid.UUID, datetime]] = {}
        #: Keys already verified against a cached record, and their principal: a warm key
        #: costs a dictionary lookup, not an HMAC. Revocation replaces the cached record,
        #: which no longer matches, so the key is verified (and refused) afresh.
        self._verified: dict[str, tuple[_Record, Principal]] = {}
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.cache.start()
        self._flusher = asyncio.create_task(self._flush_forever())

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush()
        await self.cache.stop()

    # -- management ------------------------------------------------------- #

    def check_scopes(self, scopes: list[str], held: frozenset[str]) -> frozenset[str]:
        """The concrete codes ``scopes`` grant: 422 for an unknown one, 403 for one the creator lacks."""
        known = self.registry.codes
        unknown = [
            s
            for s in scopes
            if not self.registry.valid_pattern(s) or not self.registry.expand([s], universe=known)
        ]
        if unknown:
            raise ValidationError(
                [
                    {"loc": ["body", "scopes"], "msg": f"unknown permission {s!r}", "type": "value_error"}
                    for s in unknown
                ]
            )
        granted = self.registry.expand(scopes, universe=known)
        if not granted <= held:
            raise PermissionDeniedError("A key cannot hold a permission its creator does not hold.")
        return granted

    async def create(
        self,
        tenant: TenantRef,
        *,
        creator_id: uuid.UUID,
        creator_permissions: frozenset[str],
        name: str,
        scopes: list[str],
        expires_in_days: int | None,
    ) -> tuple[ApiKey, str]:
        """A new key of ``tenant``; returns its row and the key itself (shown once)."""
        self.check_scopes(scopes, creator_permissions)
        public_id, key = new_prefixed_secret(API_KEY_PREFIX)
        expires = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
        row = ApiKey(
            tenant_id=tenant.id,
            id=uuid.uuid4(),
            public_id=public_id,
            name=name,
            digest=keyed_digest(self.digest_key, key),
            scopes=sorted(set(scopes)),
            created_by=creator_id,
            created_at=utcnow(),
            expires_at=expires,
        )
        with tenant_scope(tenant.id):
            async with self.db.session() as session, session.begin():
                session.add(row)
        self.events.audit(
            "api_key.created",
            tenant_id=tenant.id,
            actor_id=creator_id,
            target=str(row.id),
            data={"scopes": row.scopes},
        )
        return row, key

    async def list(self, tenant: TenantRef) -> list[ApiKey]:
        """The tenant's keys that are not revoked, newest first (never their secrets)."""
        with tenant_scope(tenant.id):
            async with self.db.session() as session:
                rows = await session.scalars(
                    select(ApiKey)
                    .where(ApiKey.tenant_id == tenant.id, ApiKey.revoked_at.is_(None))
                    .order_by(ApiKey.created_at.desc())
                )
                return list(rows.all())

    async def revoke(self, tenant: TenantRef, key_id: uuid.UUID, *, actor_id: uuid.UUID) -> None:
        """Revoke a key of ``tenant``: it fails on its next request in every process (404 if unknown)."""
        with tenant_scope(tenant.id):
            async with self.db.session() as session, session.begin():
                public_id = await session.scalar(
                    update(ApiKey)
                    .where(ApiKey.tenant_id == tenant.id, ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
                    .values(revoked_at=utcnow())
                    .returning(ApiKey.public_id)
                    .execution_options(synchronize_session=False)
                )
        if public_id is None:
            raise NotFoundError("No such API key.")
        await self.cache.invalidate(public_id)
        self.events.audit("api_key.revoked", tenant_id=tenant.id, actor_id=actor_id, target=str(key_id))

    # -- verification ----------------------------------------------------- #

    async def _load(self, public_id: str) -> _Record | None:
        with unscoped("auth: find an API key by its public id", system=True):
            async with self.db.session() as session:
                row = await session.scalar(select(ApiKey).where(ApiKey.public_id == public_id))
        if row is None:
            return None
        return _Record(
            id=row.id,
            tenant_id=row.tenant_id,
            name=row.name,
            digest=row.digest,
            scopes=tuple(row.scopes),
            created_by=row.created_by,
            expires_at=row.expires_at,
            revoked=row.revoked_at is not None,
        )

    async def authenticate(self, key: str) -> Principal:
        """The principal of an API key, or 401 (unknown, wrong secret, expired or revoked)."""
        public_id = prefixed_public_id(key, API_KEY_PREFIX)
        if public_id is None:
            raise InvalidTokenError("Invalid API key.")
        record = await self.cache.get(public_id)
        now = utcnow()
        seen = self._verified.get(key)
        if seen is not None and seen[0] is record and (record.expires_at is None or record.expires_at > now):
            self._used[record.id] = (record.tenant_id, now)
            return seen[1]
        if record is None or not hmac.compare_digest(record.digest, keyed_digest(self.digest_key, key)):
            raise InvalidTokenError("Invalid API key.")
        if record.revoked or (record.expires_at is not None and record.expires_at <= now):
            raise InvalidTokenError("This API key was revoked or has expired.")
        self._used[record.id] = (record.tenant_id, now)
        principal = Principal(
            user_id=record.created_by,
            tenant_id=record.tenant_id,
            session_id=record.id,
            role="",
            token_id=public_id,
            claims={"sub": str(record.created_by), "tid": str(record.tenant_id)},
            api_key=ApiKeyRef(id=record.id, name=record.name, scopes=record.scopes),
        )
        if len(self._verified) >= 10_000:
            self._verified.clear()
        self._verified[key] = (record, principal)
        return principal

    # -- last use, in batches ---------------------------------------------- #

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except Exception as exc:
                logger.warning("api keys: could not record last use (%s)", type(exc).__name__)

    async def flush(self) -> None:
        """Write the pending ``last_used_at`` values (one statement per key, one transaction per tenant)."""
        pending, self._used = self._used, {}
        by_tenant: dict[uuid.UUID, list[tuple[uuid.UUID, datetime]]] = {}
        for key_id, (tenant_id, at) in pending.items():
            by_tenant.setdefault(tenant_id, []).append((key_id, at))
        for tenant_id, uses in by_tenant.items():
            with tenant_scope(tenant_id):
                async with self.db.session() as session, session.begin():
                    for key_id, at in uses:
                        await session.execute(
                            update(ApiKey)
                            .where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id)
                            .values(last_used_at=at)
                            .execution_options(synchronize_session=False)
                        )
