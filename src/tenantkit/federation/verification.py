"""Email verification: a single-use, expiring token mailed to the account's address.

The token (``tkv_`` + 32 random bytes) is stored only as a keyed digest in
the kit's store, with the user id and the address it was sent to, for
``TENANTKIT_EMAIL_VERIFICATION_TTL`` seconds. Confirming takes the record out
(read, then delete: one winner) and sets ``users.email_verified_at`` when the
account's address is still the one the mail went to. A verified address is
what lets a federated identity be linked by email
(:mod:`tenantkit.federation.signin`).
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from tenantkit.auth.accounts import Accounts
from tenantkit.db.base import utcnow
from tenantkit.db.engine import Database
from tenantkit.db.models import User
from tenantkit.digests import keyed_digest
from tenantkit.errors import BadRequestError, ConflictError, NotFoundError
from tenantkit.events import Events
from tenantkit.mail import Mail
from tenantkit.stores.base import Store

__all__ = ["VERIFY_PREFIX", "EmailVerification"]

VERIFY_PREFIX = "tkv_"
_INVALID = "Invalid or expired verification token."


class EmailVerification:
    """Mails verification tokens and confirms them.

    Args:
        database: Where users live.
        store: Holds the pending tokens (as digests).
        key: Server key the tokens are digested with.
        send_mail: The outbox.
        accounts: Drops the cached profile once verified (``/auth/me`` shows it).
        events: Audit rows.
        ttl: Seconds a token stays valid.
    """

    def __init__(
        self,
        *,
        database: Database,
        store: Store,
        key: bytes,
        send_mail: Callable[[Mail], Awaitable[None]],
        accounts: Accounts,
        events: Events,
        ttl: int = 86400,
    ) -> None:
        self.db = database
        self.store = store
        self.key = key
        self.send_mail = send_mail
        self.accounts = accounts
        self.events = events
        self.ttl = ttl

    def _key(self, token: str) -> str:
        return "emailverify:{v:" + keyed_digest(self.key, token).hex() + "}"

    async def request(self, user_id: uuid.UUID, *, tenant_id: uuid.UUID | None) -> None:
        """Mail a verification token to the user's address (409 when it is verified already)."""
        async with self.db.session() as session:
            user = await session.get(User, user_id)
        if user is None or not user.is_active:
            raise NotFoundError("No such account.")
        if user.email_verified_at is not None:
            raise ConflictError("This email address is verified already.")
        token = VERIFY_PREFIX + secrets.token_urlsafe(32)
        record = {"user_id": str(user_id), "email": user.email}
        await self.store.set(self._key(token), json.dumps(record).encode(), ttl=self.ttl)
        expires = datetime.now(UTC) + timedelta(seconds=self.ttl)
        await self.send_mail(
            Mail(
                to=user.email,
                subject="Verify your email address",
                body=(
                    "Confirm that this address is yours.\n"
                    f"Verification token: {token}\n"
                    f"It works once and expires at {expires.isoformat()}. "
                    "If you did not ask for it, ignore this message."
                ),
                kind="email_verification",
            )
        )
        self.events.audit("email.verification_sent", tenant_id=tenant_id, actor_id=user_id)

    async def confirm(self, token: str) -> uuid.UUID:
        """Spend ``token``; the account's email is verified from now on (400 when invalid)."""
        if not token.startswith(VERIFY_PREFIX) or len(token) > 128:
            raise BadRequestError(_INVALID)
        key = self._key(token)
        raw = await self.store.get(key)
        if raw is None or not await self.store.delete(key):
            raise BadRequestError(_INVALID)
        record = json.loads(raw)
        user_id = uuid.UUID(record["user_id"])
        async with self.db.session() as session, session.begin():
            changed = await session.execute(
                update(User)
                .where(User.id == user_id, User.email == record["email"], User.is_active.is_(True))
                .values(email_verified_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if not changed.rowcount:  # type: ignore[attr-defined]
                raise BadRequestError(_INVALID)
        await self.accounts.profile_changed(user_id)
        self.events.security("email.verified", data={"user_id": str(user_id)})
        return user_id

    async def is_verified(self, user_id: uuid.UUID) -> bool:
        """Whether the user's email is verified."""
        async with self.db.session() as session:
            return await session.scalar(select(User.email_verified_at).where(User.id == user_id)) is not None
