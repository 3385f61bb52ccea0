"""SCIM bearer tokens: ``scim_<public id>_<secret>``, one tenant each, stored as a keyed digest.

* A token is shown once; only ``HMAC-SHA256(server key, token)`` is stored
  (the key is ``KeySet.derive("scim-tokens")``), as for API keys: a fast keyed
  hash is right for 256 random bits, and a copied table alone verifies nothing.
* The tenant is the token's: a SCIM request never names another one.
* Verification is cached per process by public id; revoking a token
  invalidates that entry in every process through the store's publish
  channel, so a revoked token fails on its next request everywhere.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass

from sqlalchemy import select, update

from tenantkit.cache import SyncedCache
from tenantkit.db.base import utcnow
from tenantkit.db.engine import Database
from tenantkit.db.models import ScimToken
from tenantkit.db.scoping import tenant_scope, unscoped
from tenantkit.digests import keyed_digest, new_prefixed_secret, prefixed_public_id
from tenantkit.errors import InvalidTokenError, NotFoundError
from tenantkit.events import Events
from tenantkit.stores.base import Store

__all__ = ["SCIM_TOKEN_PREFIX", "ScimTokenRecord", "ScimTokens", "looks_like_scim_token"]

SCIM_TOKEN_PREFIX = "scim_"


def looks_like_scim_token(value: str) -> bool:
    """``scim_<16 hex>_<secret>``: a cheap shape check before any lookup."""
    return prefixed_public_id(value, SCIM_TOKEN_PREFIX) is not None


@dataclass(frozen=True, slots=True)
class ScimTokenRecord:
    """A verified SCIM token: which token, which tenant."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    public_id: str
    digest: bytes
    revoked: bool


class ScimTokens:
    """Create, list, revoke and verify a tenant's SCIM tokens.

    Args:
        database: Where tokens live (tenant-owned rows under row-level security).
        store: Carries the verification cache's invalidations.
        digest_key: The server key of the stored digests.
        events: Audit rows.
    """

    def __init__(self, *, database: Database, store: Store, digest_key: bytes, events: Events) -> None:
        self.db = database
        self.digest_key = digest_key
        self.events = events
        self.cache: SyncedCache[ScimTokenRecord | None] = SyncedCache(
            store, "scim-tokens", self._load, ttl=300
        )

    async def start(self) -> None:
        await self.cache.start()

    async def stop(self) -> None:
        await self.cache.stop()

    # -- management ------------------------------------------------------- #

    async def create(
        self, tenant_id: uuid.UUID, *, name: str, creator_id: uuid.UUID | None
    ) -> tuple[ScimToken, str]:
        """A new token of the tenant; returns its row and the token itself (shown once)."""
        public_id, token = new_prefixed_secret(SCIM_TOKEN_PREFIX)
        row = ScimToken(
            tenant_id=tenant_id,
            id=uuid.uuid4(),
            public_id=public_id,
            name=name,
            digest=keyed_digest(self.digest_key, token),
            created_by=creator_id,
            created_at=utcnow(),
        )
        with tenant_scope(tenant_id):
            async with self.db.session() as session, session.begin():
                session.add(row)
        self.events.audit("scim_token.created", tenant_id=tenant_id, actor_id=creator_id, target=str(row.id))
        return row, token

    async def list(self, tenant_id: uuid.UUID) -> list[ScimToken]:
        """The tenant's tokens that are not revoked, newest first (never their secrets)."""
        with tenant_scope(tenant_id):
            async with self.db.session() as session:
                rows = await session.scalars(
                    select(ScimToken)
                    .where(ScimToken.tenant_id == tenant_id, ScimToken.revoked_at.is_(None))
                    .order_by(ScimToken.created_at.desc(), ScimToken.id)
                )
                return list(rows.all())

    async def revoke(self, tenant_id: uuid.UUID, token_id: uuid.UUID, *, actor_id: uuid.UUID | None) -> None:
        """Revoke a token of the tenant: refused on its next request in every process (404 if unknown)."""
        with tenant_scope(tenant_id):
            async with self.db.session() as session, session.begin():
                public_id = await session.scalar(
                    update(ScimToken)
                    .where(
                        ScimToken.tenant_id == tenant_id,
                        ScimToken.id == token_id,
                        ScimToken.revoked_at.is_(None),
                    )
                    .values(revoked_at=utcnow())
                    .returning(ScimToken.public_id)
                    .execution_options(synchronize_session=False)
                )
        if public_id is None:
            raise NotFoundError("No such SCIM token.")
        await self.cache.invalidate(public_id)
        self.events.audit("scim_token.revoked", tenant_id=tenant_id, actor_id=actor_id, target=str(token_id))

    # -- verification ----------------------------------------------------- #

    async def _load(self, public_id: str) -> ScimTokenRecord | None:
        with unscoped("scim: find a token by its public id", system=True):
            async with self.db.session() as session:
                row = await session.scalar(select(ScimToken).where(ScimToken.public_id == public_id))
        if row is None:
            return None
        return ScimTokenRecord(
            id=row.id,
            tenant_id=row.tenant_id,
            public_id=row.public_id,
            digest=row.digest,
            revoked=row.revoked_at is not None,
        )

    async def authenticate(self, token: str) -> ScimTokenRecord:
        """The record of a live token, or 401 (malformed, unknown, wrong secret or revoked)."""
        public_id = prefixed_public_id(token, SCIM_TOKEN_PREFIX)
        if public_id is None:
            raise InvalidTokenError("Invalid SCIM token.")
        record = await self.cache.get(public_id)
        if record is None or not hmac.compare_digest(record.digest, keyed_digest(self.digest_key, token)):
            raise InvalidTokenError("Invalid SCIM token.")
        if record.revoked:
            raise InvalidTokenError("This SCIM token was revoked.")
        return record
