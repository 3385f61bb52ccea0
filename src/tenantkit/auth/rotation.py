"""The refresh rotation's statements, built once.

One conditional ``UPDATE`` spends a refresh token only while everything it
stands on is valid (unspent, unexpired, not idle; session, user, tenant and
membership alive) and returns what the successor's access token needs; the
successor is inserted from what it returns. On PostgreSQL both are one
statement (a data-modifying CTE) sent in one round trip, prepared once per
connection (:func:`tenantkit.db.fastpath.fetchrow`): no ``BEGIN``/``COMMIT``,
no second statement. SQLite cannot modify data in a CTE, so there the spend and
the insert are two statements in one transaction.

Everything the statement writes is known before it runs: the successor's
token, digest and id, and its sealed copy for the grace window (the successor
token under a key derived from the presented one). The access token is signed
after the statement from the facts it returns, with ``iat`` = the spend time
and ``jti`` = the successor's id, so a duplicate inside the grace window is
answered with the same pair: the sealed successor token, and the access token
signed again from the same claims (byte-identical with the deterministic
algorithms: HS*, EdDSA, RS*; with ES256 a fresh signature over the same claims).
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    LargeBinary,
    String,
    Table,
    Uuid,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    select,
    update,
)

from tenantkit.auth import refresh as rt
from tenantkit.auth.tokens import AccessTokens, TokenPair
from tenantkit.db import fastpath
from tenantkit.db.base import UTCDateTime, utcnow
from tenantkit.db.engine import Database
from tenantkit.db.models import AuthSession, Membership, RefreshToken, Tenant, User
from tenantkit.errors import ExpiredTokenError, InvalidTokenError, TenantForbiddenError, TokenReuseError
from tenantkit.events import Events
from tenantkit.observability.metrics import Metrics
from tenantkit.settings import Settings

logger = logging.getLogger("tenantkit.auth")

__all__ = ["MINT", "ROTATE", "SPEND", "Rotation", "as_utc"]


def _session_fact(expression: str, type_: Any) -> Any:
    # Written out (fixed text, no input) because SQLite renders RETURNING columns
    # unqualified, which would make generated correlated subqueries ambiguous.
    return literal_column(
        f"(SELECT {expression} FROM auth_sessions AS s "  # noqa: S608 - fixed fragments only
        "LEFT JOIN memberships AS m ON m.tenant_id = s.tenant_id AND m.user_id = s.user_id "
        "WHERE s.id = refresh_tokens.session_id)",
        type_,
    )


_SESSION_FACTS = (
    _session_fact("s.user_id", Uuid()),
    _session_fact("s.tenant_id", Uuid()),
    _session_fact("s.expires_at", UTCDateTime()),
    _session_fact("m.role", String()),
)


def _statements() -> tuple[Any, Any, Any]:
    """The rotation's statements: the portable spend and mint, and PostgreSQL's one-statement rotation.

    The spend is an ``UPDATE`` that spends a token only while everything it stands
    on is valid. Its portable form states the session's validity as one ``EXISTS``
    (SQLite can return only the updated table's columns, so the session's facts
    come from subqueries); PostgreSQL's is an ``UPDATE ... FROM`` join, which
    returns them directly and feeds the successor's ``INSERT`` in the same statement.
    """
    now = bindparam("b_now", type_=UTCDateTime())
    successor_id = bindparam("b_successor_id", type_=Uuid())
    tokens = cast("Table", RefreshToken.__table__)
    token_ok = (
        tokens.c.digest == bindparam("b_digest", type_=LargeBinary()),
        tokens.c.spent_at.is_(None),
        tokens.c.expires_at > now,
        tokens.c.created_at > bindparam("b_idle_since", type_=UTCDateTime()),
    )
    session_ok = (
        AuthSession.id == tokens.c.session_id,
        AuthSession.revoked_at.is_(None),
        AuthSession.expires_at > now,
        User.id == AuthSession.user_id,
        User.is_active.is_(True),
        Tenant.id == AuthSession.tenant_id,
        Tenant.status == "active",
        Membership.tenant_id == AuthSession.tenant_id,
        Membership.user_id == AuthSession.user_id,
    )
    spend = update(tokens).values(spent_at=now, successor_id=successor_id)
    portable = spend.where(*token_ok, exists().where(*session_ok)).returning(
        tokens.c.session_id, *_SESSION_FACTS
    )
    spent = (
        spend.where(*token_ok, *session_ok)
        .returning(
            tokens.c.session_id,
            AuthSession.user_id,
            AuthSession.tenant_id,
            AuthSession.expires_at,
            Membership.role,
        )
        .cte("spent")
    )
    minted = insert(tokens).from_select(
        ["id", "session_id", "digest", "created_at", "expires_at", "sealed_pair"],
        select(
            successor_id,
            spent.c.session_id,
            bindparam("b_successor_digest", type_=LargeBinary()),
            now,
            func.least(bindparam("b_expires_at", type_=UTCDateTime()), spent.c.expires_at),
            bindparam("b_sealed", type_=LargeBinary()),
        ),
    )
    rotate = select(spent.c.session_id, spent.c.user_id, spent.c.tenant_id, spent.c.role).add_cte(
        minted.cte("minted")
    )
    return portable, rotate, tokens


_SPEND_PORTABLE, _ROTATE, _TOKENS = _statements()
#: SQLite (and any dialect without data-modifying CTEs): spend, then mint, in one transaction.
SPEND = fastpath.FastStatement(_SPEND_PORTABLE)
MINT = fastpath.FastStatement(
    insert(_TOKENS),
    column_keys=["id", "session_id", "digest", "created_at", "expires_at", "sealed_pair"],
)
#: PostgreSQL: spend and mint as one statement, one round trip.
ROTATE = fastpath.FastStatement(_ROTATE)


def as_utc(value: Any, dialect: Any) -> Any:
    """A timestamp read through a subquery or aggregate (no column type applied) as aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return UTCDateTime().process_result_value(value, dialect)


class Rotation:
    """Refresh rotation with reuse detection (mixed into :class:`~tenantkit.auth.sessions.Sessions`)."""

    settings: Settings
    db: Database
    tokens: AccessTokens
    events: Events
    metrics: Metrics

    def _claims(self, user_id: uuid.UUID, tenant_id: uuid.UUID, role: str) -> dict[str, Any]:
        raise NotImplementedError

    async def revoke(self, session_ids: list[uuid.UUID], *, reason: str, user_id: uuid.UUID | None) -> None:
        raise NotImplementedError

    async def refresh(self, token: str, *, ip: str | None) -> TokenPair:
        """Rotate ``token``: spend it and return its successor (race-free).

        Raises:
            InvalidTokenError: unknown, expired, or its session ended.
            TokenReuseError: a spent token outside the grace window; the session is revoked.
        """
        if not rt.looks_like_refresh_token(token):
            raise InvalidTokenError("Invalid refresh token.")
        digest = rt.digest(token)
        now = utcnow()
        successor = rt.new_refresh_token()
        successor_id = uuid.uuid4()
        params = {
            "b_digest": digest,
            "b_now": now,
            "b_idle_since": now - timedelta(seconds=self.settings.session_idle_timeout),
            "b_successor_id": successor_id,
            "b_successor_digest": rt.digest(successor),
            "b_expires_at": now + timedelta(seconds=self.settings.refresh_token_ttl),
            "b_sealed": (
                rt.seal(token, json.dumps({"rt": successor})) if self.settings.refresh_grace_seconds else None
            ),
        }
        if self.db.dialect == "postgresql":
            row = await fastpath.fetchrow(self.db, ROTATE, params)
        else:
            row = await self._spend_and_mint(params)
        if row is None:
            return await self._refresh_rejected(token, digest, now, ip)
        session_id, user_id, tenant_id, role_name = row
        access, expires_in = self._access_token(session_id, user_id, tenant_id, role_name, now, successor_id)
        return TokenPair(access, expires_in, successor, session_id)

    async def _spend_and_mint(self, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The rotation as two statements in one transaction (dialects without data-modifying CTEs)."""
        async with fastpath.transaction(self.db) as run:
            row = await run.fetchrow(SPEND, params)
            if row is None:
                return None
            session_id, user_id, tenant_id, session_expires, role_name = row
            session_expires = as_utc(session_expires, self.db.engine.dialect)
            await run.execute(
                MINT,
                {
                    "id": params["b_successor_id"],
                    "session_id": session_id,
                    "digest": params["b_successor_digest"],
                    "created_at": params["b_now"],
                    "expires_at": min(params["b_expires_at"], session_expires),
                    "sealed_pair": params["b_sealed"],
                },
            )
            return session_id, user_id, tenant_id, role_name

    def _access_token(
        self,
        session_id: uuid.UUID,
        user_id: uuid.UUID,
        tenant_id: uuid.UUID,
        role: str,
        spent_at: datetime,
        successor_id: uuid.UUID,
    ) -> tuple[str, int]:
        """The successor's access token: ``iat`` the spend time, ``jti`` the successor's id.

        Signed from the same claims again for a duplicate inside the grace window.
        """
        return self.tokens.issue(
            user_id=user_id,
            tenant_id=tenant_id,
            session_id=session_id,
            role=role,
            extra_claims=self._claims(user_id, tenant_id, role),
            issued_at=int(spent_at.timestamp()),
            token_id=successor_id.hex,
        )

    async def _refresh_rejected(self, token: str, digest: bytes, now: datetime, ip: str | None) -> TokenPair:
        """Classify a refresh that did not rotate: duplicate in grace, reuse, or an ended session."""
        async with self.db.session() as session:
            row = await session.scalar(select(RefreshToken).where(RefreshToken.digest == digest))
            if row is None:
                raise InvalidTokenError("Invalid refresh token.")
            auth_session = await session.get(AuthSession, row.session_id)
            successor = await session.get(RefreshToken, row.successor_id) if row.successor_id else None
            tenant = await session.get(Tenant, auth_session.tenant_id) if auth_session else None
            user = await session.get(User, auth_session.user_id) if auth_session else None
            role = (
                await session.scalar(
                    select(Membership.role).where(
                        Membership.tenant_id == auth_session.tenant_id,
                        Membership.user_id == auth_session.user_id,
                    )
                )
                if auth_session
                else None
            )
        assert auth_session is not None
        if auth_session.revoked_at is not None:
            await self._reuse_detected(auth_session, "revoked", ip, revoke=False)
            raise InvalidTokenError("The session has ended.")
        if row.spent_at is None:
            idle = timedelta(seconds=self.settings.session_idle_timeout)
            if row.expires_at <= now or auth_session.expires_at <= now or row.created_at + idle <= now:
                await self._reuse_detected(auth_session, "expired", ip, revoke=False)
                raise ExpiredTokenError("The refresh token expired.")
            if tenant is None or tenant.status != "active":
                raise TenantForbiddenError("This tenant is suspended.")
            raise InvalidTokenError("The session has ended.")
        grace = self.settings.refresh_grace_seconds
        sealed = successor.sealed_pair if successor is not None else None
        if grace and sealed and (now - row.spent_at).total_seconds() <= grace:
            opened = rt.open_box(token, sealed)
            if opened is not None:
                # The duplicate of a concurrent retry: the same pair again, while the
                # session still stands (the spend's own checks, read back).
                if (
                    tenant is None
                    or tenant.status != "active"
                    or user is None
                    or not user.is_active
                    or role is None
                    or auth_session.expires_at <= now
                ):
                    raise InvalidTokenError("The session has ended.")
                assert row.successor_id is not None
                access, lifetime = self._access_token(
                    auth_session.id,
                    auth_session.user_id,
                    auth_session.tenant_id,
                    role,
                    row.spent_at,
                    row.successor_id,
                )
                expires_in = int(int(row.spent_at.timestamp()) + lifetime - now.timestamp())
                if expires_in > 0:
                    return TokenPair(access, expires_in, json.loads(opened)["rt"], auth_session.id)
        await self._reuse_detected(auth_session, "spent", ip, revoke=True)
        raise TokenReuseError("This refresh token was already used; the session has been revoked.")

    async def _reuse_detected(
        self, auth_session: AuthSession, classification: str, ip: str | None, *, revoke: bool
    ) -> None:
        if revoke:
            await self.revoke([auth_session.id], reason="token_reuse", user_id=auth_session.user_id)
            self.metrics.token_reuse.inc()
            logger.warning(
                "refresh token reuse detected; session revoked",
                extra={"session_id": str(auth_session.id), "classification": classification},
            )
        await self.events.emit(
            "on_token_reuse",
            user_id=str(auth_session.user_id),
            session_id=str(auth_session.id),
            classification=classification,
            ip=ip,
        )
        self.events.audit(
            "token.reuse",
            tenant_id=auth_session.tenant_id,
            actor_id=auth_session.user_id,
            ip=ip,
            target=str(auth_session.id),
            data={"classification": classification, "revoked": revoke},
        )
