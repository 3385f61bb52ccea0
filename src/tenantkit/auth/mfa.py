"""Two-factor sign-in: TOTP (RFC 6238) with pyotp, single-use recovery codes, the login challenge.

* Enrolment: :meth:`TwoFactor.setup` stores a new secret, sealed at rest
  (AES-GCM bound to the user), and returns it with its ``otpauth://`` URI and
  a QR code (SVG); :meth:`TwoFactor.confirm` turns it on with a first code and
  returns ten recovery codes, stored only as keyed digests.
* A code is accepted once: the newest accepted 30-second step is kept, and a
  code for that step or an older one is a replay (the confirming code counts).
* Sign-in: when the user has a second factor, the password step returns a
  challenge (an opaque ``mfa_token`` in the store, :attr:`challenge_ttl`
  seconds, spent by success or by its :attr:`max_attempts`-th failure) instead
  of tokens. The challenge records which ``methods`` answer it, so a passkey
  (WebAuthn) can be added as another method without changing its shape.
* Every failed code counts toward the account's lockout, like a wrong password.
"""

from __future__ import annotations

import io
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import pyotp
import segno
from sqlalchemy import delete, select, update

from tenantkit.auth.lockout import Lockout
from tenantkit.cache import SyncedCache
from tenantkit.db.base import utcnow
from tenantkit.db.engine import Database
from tenantkit.db.models import RecoveryCode, UserTOTP
from tenantkit.digests import digest, keyed_digest
from tenantkit.errors import AuthenticationError, BadRequestError, ConflictError, NotFoundError
from tenantkit.events import Events
from tenantkit.sealing import Sealer
from tenantkit.stores.base import Store

__all__ = ["MFA_METHODS", "MFA_PREFIX", "Challenge", "TwoFactor"]

MFA_PREFIX = "tkm_"
MFA_METHODS = ("totp", "recovery_code")
RECOVERY_CODES = 10
_STEP = 30


@dataclass(frozen=True, slots=True)
class Challenge:
    """A password step passed; the second factor is awaited."""

    token: str
    methods: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"mfa_required": True, "mfa_token": self.token, "methods": list(self.methods)}


def _recovery_code() -> str:
    raw = secrets.token_hex(5)  # 40 bits, shown as xxxxx-xxxxx
    return f"{raw[:5]}-{raw[5:]}"


def _normalise_recovery(code: str) -> str:
    compact = code.strip().lower().replace(" ", "").replace("-", "")
    return f"{compact[:5]}-{compact[5:]}"


class TwoFactor:
    """TOTP enrolment and checks, recovery codes, and the sign-in challenge.

    Args:
        database: Where secrets and recovery codes live.
        store: Holds sign-in challenges and carries cache invalidations.
        sealer: Encrypts TOTP secrets at rest.
        code_key: Keys the digests of recovery codes.
        lockout: Failed codes count toward the account's lock.
        events: Audit rows.
        issuer: The name authenticator apps show.
        challenge_ttl: Seconds a sign-in challenge lives.
        max_attempts: Failures that spend a challenge.
    """

    def __init__(
        self,
        *,
        database: Database,
        store: Store,
        sealer: Sealer,
        code_key: bytes,
        lockout: Lockout,
        events: Events,
        issuer: str = "tenantkit",
        challenge_ttl: int = 300,
        max_attempts: int = 5,
    ) -> None:
        self.db = database
        self.store = store
        self.sealer = sealer
        self.code_key = code_key
        self.lockout = lockout
        self.events = events
        self.issuer = issuer
        self.challenge_ttl = challenge_ttl
        self.max_attempts = max_attempts
        self.enrolled_cache: SyncedCache[bool] = SyncedCache(store, "mfa-enrolled", self._load_enrolled)

    async def start(self) -> None:
        await self.enrolled_cache.start()

    async def stop(self) -> None:
        await self.enrolled_cache.stop()

    # -- status ----------------------------------------------------------- #

    async def _load_enrolled(self, key: str) -> bool:
        async with self.db.session() as session:
            confirmed = await session.scalar(
                select(UserTOTP.confirmed_at).where(UserTOTP.user_id == uuid.UUID(key))
            )
        return confirmed is not None

    async def enrolled(self, user_id: uuid.UUID) -> bool:
        """Whether the user signs in with a second factor (cached in process, invalidated everywhere)."""
        return await self.enrolled_cache.get(str(user_id))

    async def _changed(self, user_id: uuid.UUID) -> None:
        await self.enrolled_cache.invalidate(str(user_id))

    # -- enrolment -------------------------------------------------------- #

    def _context(self, user_id: uuid.UUID) -> bytes:
        return b"totp:" + user_id.bytes

    async def setup(self, user_id: uuid.UUID, email: str) -> dict[str, str]:
        """A new secret for the user (replacing an unconfirmed one): secret, URI and QR code (SVG)."""
        secret = pyotp.random_base32()
        sealed = self.sealer.seal(secret.encode(), context=self._context(user_id))
        async with self.db.session() as session, session.begin():
            row = await session.get(UserTOTP, user_id, with_for_update=True)
            if row is not None and row.confirmed_at is not None:
                raise ConflictError("Two-factor sign-in is already on; turn it off first.")
            if row is None:
                session.add(UserTOTP(user_id=user_id, secret=sealed))
            else:
                row.secret, row.created_at, row.last_step = sealed, utcnow(), 0
        uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=self.issuer)
        svg = io.BytesIO()
        segno.make(uri, error="m").save(svg, kind="svg", xmldecl=False, scale=4)
        return {"secret": secret, "otpauth_uri": uri, "qr_svg": svg.getvalue().decode()}

    async def confirm(self, user_id: uuid.UUID, code: str) -> list[str]:
        """Turn the second factor on with a first valid code; returns the ten recovery codes (once)."""
        codes = [_recovery_code() for _ in range(RECOVERY_CODES)]
        async with self.db.session() as session, session.begin():
            row = await session.get(UserTOTP, user_id, with_for_update=True)
            if row is None or row.confirmed_at is not None:
                raise BadRequestError("Start with POST /auth/2fa/totp/setup.")
            step = self._accepted_step(row, code)
            if step is None:
                raise BadRequestError("That code is not valid.")
            row.confirmed_at, row.last_step = utcnow(), step
            await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
            session.add_all(
                RecoveryCode(user_id=user_id, digest=keyed_digest(self.code_key, code)) for code in codes
            )
        await self._changed(user_id)
        self.events.audit("mfa.enabled", tenant_id=None, actor_id=user_id)
        return codes

    async def disable(self, user_id: uuid.UUID) -> None:
        """Turn the second factor off (the caller proved a code or the password)."""
        async with self.db.session() as session, session.begin():
            row = await session.get(UserTOTP, user_id)
            if row is None or row.confirmed_at is None:
                raise NotFoundError("Two-factor sign-in is not on.")
            await session.delete(row)
            await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        await self._changed(user_id)
        self.events.audit("mfa.disabled", tenant_id=None, actor_id=user_id)

    # -- checks ----------------------------------------------------------- #

    def _accepted_step(self, row: UserTOTP, code: str) -> int | None:
        """The 30-second step ``code`` is valid for (±1 step of drift), if newer than the last one used."""
        if not (len(code) == 6 and code.isdigit()):
            return None
        secret = self.sealer.open(row.secret, context=self._context(row.user_id))
        if secret is None:
            return None
        totp = pyotp.TOTP(secret.decode())
        now = int(utcnow().timestamp()) // _STEP
        for step in (now - 1, now, now + 1):
            if step > row.last_step and secrets.compare_digest(totp.at(step * _STEP), code):
                return step
        return None

    async def check(self, user_id: uuid.UUID, *, code: str | None, recovery_code: str | None) -> bool:
        """Spend a TOTP code or a recovery code of the user; ``False`` when it is wrong or used.

        The spend is a conditional ``UPDATE``, so two concurrent uses of one code
        cannot both succeed.
        """
        async with self.db.session() as session, session.begin():
            if code is not None:
                row = await session.get(UserTOTP, user_id)
                if row is None or row.confirmed_at is None:
                    return False
                step = self._accepted_step(row, code)
                if step is None:
                    return False
                spent = await session.execute(
                    update(UserTOTP)
                    .where(UserTOTP.user_id == user_id, UserTOTP.last_step < step)
                    .values(last_step=step)
                    .execution_options(synchronize_session=False)
                )
                return bool(spent.rowcount)  # type: ignore[attr-defined]
            if recovery_code is not None:
                wanted = keyed_digest(self.code_key, _normalise_recovery(recovery_code))
                spent = await session.execute(
                    update(RecoveryCode)
                    .where(
                        RecoveryCode.user_id == user_id,
                        RecoveryCode.digest == wanted,
                        RecoveryCode.used_at.is_(None),
                    )
                    .values(used_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
                return bool(spent.rowcount)  # type: ignore[attr-defined]
        return False

    async def verify(self, user_id: uuid.UUID, email: str, *, code: str) -> None:
        """Check a code of a signed-in user (turning 2FA off): counts toward the lockout; 401 when wrong."""
        attempt = await self.lockout.begin(email)
        if await self.check(user_id, code=code, recovery_code=None):
            await self.lockout.succeeded(email)
            return
        await self.lockout.failed(email, attempt)
        raise AuthenticationError("That code is not valid.")

    # -- the sign-in challenge -------------------------------------------- #

    @staticmethod
    def _key(token: str) -> str:
        return "mfa:{c:" + digest(token).hex() + "}"

    async def begin(self, data: dict[str, Any]) -> Challenge:
        """Open a sign-in challenge carrying ``data`` (who, which tenant, from where)."""
        token = MFA_PREFIX + secrets.token_urlsafe(32)
        await self.store.set(self._key(token), json.dumps(data).encode(), ttl=self.challenge_ttl)
        return Challenge(token, MFA_METHODS)

    async def answer(self, token: str, *, code: str | None, recovery_code: str | None) -> dict[str, Any]:
        """The challenge's data once answered correctly; the challenge is spent.

        Raises:
            AuthenticationError: unknown, expired or spent token, or a wrong or used code
                (which also counts toward the lockout; the last allowed failure spends the token).
            AccountLockedError: the account is locked.
        """
        if not token.startswith(MFA_PREFIX):
            raise AuthenticationError("Unknown or expired sign-in challenge.")
        key = self._key(token)
        raw = await self.store.get(key)
        if raw is None:
            raise AuthenticationError("Unknown or expired sign-in challenge.")
        data: dict[str, Any] = json.loads(raw)
        email = data["email"]
        attempt = await self.lockout.begin(email)
        user_id = uuid.UUID(data["user_id"])
        if await self.check(user_id, code=code, recovery_code=recovery_code):
            if not await self.store.delete(key):  # single use, even under a race
                raise AuthenticationError("Unknown or expired sign-in challenge.")
            await self.store.delete(key + ":failures")
            await self.lockout.succeeded(email)
            return data
        await self.lockout.failed(email, attempt)
        failures = await self.store.incr(key + ":failures", ttl=self.challenge_ttl)
        if failures >= self.max_attempts:
            await self.store.delete(key, key + ":failures")
        self.events.security("mfa.failed", ip=data.get("ip"))
        raise AuthenticationError("That code is not valid.")
