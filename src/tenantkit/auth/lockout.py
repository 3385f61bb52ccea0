"""Per-account lockout that holds the attacker, never the owner for good.

The policy (documented against OWASP ASVS 5.0 §6.1.1 and §6.3.1 in
``docs/concepts/security.md``):

1. **Per account.** ``threshold`` consecutive failures for an email (unknown
   emails alike), from any address, lock it for ``seconds``. Attempts are
   counted *before* the password check, atomically, so N parallel wrong
   guesses can never all be judged: the threshold holds exactly.
2. **The lock is never extended.** While locked, attempts are refused (423)
   without checking the password and without counting; when ``seconds``
   have passed the owner's right password works at once.
3. **An address locks an account once.** The address whose failure locked
   the account is *struck* for that account (for ``max_seconds``). Its
   further failures no longer count toward the account: they lock that
   address alone out of that account, for ``seconds * 2**n`` (n-th time,
   capped at ``max_seconds``). One address cannot keep the owner out.
4. **The owner can always recover.** A password reset lifts the account lock
   (and the resetting address's own strike); a success resets the counts.

Every password check (login, password change, re-authentication) goes
through the same three calls: ``attempt = await lockout.begin(email)``, then
``await lockout.failed(email, attempt)`` or ``await lockout.succeeded(email)``.
"""

from __future__ import annotations

import logging
import math

from tenantkit.context import current_client_ip
from tenantkit.errors import AccountLockedError
from tenantkit.stores.base import Store

__all__ = ["Attempt", "Lockout"]

security_logger = logging.getLogger("tenantkit.security")


class Attempt(int):
    """The attempt number :meth:`Lockout.begin` counted, remembering which counter counted it.

    Attributes:
        ip: The client address of the attempt (``None`` when unknown).
        by_address: Counted against the address alone (the address is struck).
    """

    ip: str | None
    by_address: bool

    def __new__(cls, number: int, *, ip: str | None = None, by_address: bool = False) -> Attempt:
        attempt = super().__new__(cls, number)
        attempt.ip = ip
        attempt.by_address = by_address
        return attempt


class Lockout:
    """Counts password-check attempts per email (and per address once struck) in the store.

    Args:
        store: Shared store (counters are atomic there).
        threshold: Consecutive failures that lock the account.
        seconds: Lock duration, and the window in which failures count.
        max_seconds: Cap of an address's backoff, and how long an address
            stays struck for an account after it locked it.
    """

    def __init__(self, store: Store, *, threshold: int, seconds: int, max_seconds: int = 86_400) -> None:
        self._store = store
        self.threshold = threshold
        self.seconds = seconds
        self.max_seconds = max(max_seconds, seconds)

    def __repr__(self) -> str:
        return f"Lockout(threshold={self.threshold}, seconds={self.seconds}, max_seconds={self.max_seconds})"

    @staticmethod
    def _keys(email: str) -> tuple[str, str]:
        tag = f"{{e:{email}}}"
        return f"lk:{tag}:attempts", f"lk:{tag}:lock"

    @staticmethod
    def _address_keys(email: str, ip: str) -> tuple[str, str, str]:
        """Attempts, lock and strikes of one address against one account."""
        base = f"lk:{{e:{email}}}:a:{ip}"
        return f"{base}:attempts", f"{base}:lock", f"{base}:strikes"

    def _locked(self, retry_after: float | None) -> AccountLockedError:
        seconds = max(1, math.ceil(retry_after if retry_after is not None else self.seconds))
        return AccountLockedError(
            "Too many failed attempts; the account is temporarily locked.",
            headers={"Retry-After": str(seconds)},
        )

    def backoff(self, strikes: int) -> int:
        """Seconds an address is locked out of an account the ``strikes``-th time it is struck."""
        return min(self.max_seconds, self.seconds << min(strikes, 32))

    async def begin(self, email: str, *, ip: str | None = None) -> Attempt:
        """Count an attempt; raise :class:`AccountLockedError` when locked.

        Args:
            email: The normalised email the password is checked for.
            ip: The client address (default: the running request's).

        Returns:
            The attempt, to hand to :meth:`failed`.
        """
        ip = ip if ip is not None else current_client_ip()
        attempts_key, lock_key = self._keys(email)
        if ip:
            address_attempts, address_lock, strikes = self._address_keys(email, ip)
            remaining = await self._store.ttl(address_lock)
            if remaining is not None:
                raise self._locked(remaining)
        remaining = await self._store.ttl(lock_key)
        if remaining is not None:
            raise self._locked(remaining)
        if ip and await self._store.get(strikes) is not None:
            number = await self._store.incr(address_attempts, ttl=self.seconds)
            if number > self.threshold:
                raise self._locked(await self._store.ttl(address_lock))
            return Attempt(number, ip=ip, by_address=True)
        number = await self._store.incr(attempts_key, ttl=self.seconds)
        if number > self.threshold:
            raise self._locked(await self._store.ttl(lock_key))
        return Attempt(number, ip=ip)

    async def failed(self, email: str, attempt: int) -> bool:
        """Record a failure of ``attempt``; True when this failure locked the account.

        A failure from a struck address locks that address out of the account
        (returns False: the account stays open to everyone else).
        """
        if attempt < self.threshold:
            return False
        ip = attempt.ip if isinstance(attempt, Attempt) else None
        if isinstance(attempt, Attempt) and attempt.by_address and ip:
            await self._lock_address(email, ip)
            return False
        attempts_key, lock_key = self._keys(email)
        await self._store.set(lock_key, b"1", ttl=self.seconds)
        await self._store.delete(attempts_key)
        if ip:
            strikes = self._address_keys(email, ip)[2]
            await self._store.set(strikes, b"1", ttl=self.max_seconds)
        return True

    async def _lock_address(self, email: str, ip: str) -> None:
        address_attempts, address_lock, strikes_key = self._address_keys(email, ip)
        raw = await self._store.get(strikes_key)
        strikes = int(raw) if raw is not None and raw.isdigit() else 1
        seconds = self.backoff(strikes)
        await self._store.set(address_lock, b"1", ttl=seconds)
        await self._store.set(strikes_key, str(strikes + 1).encode(), ttl=self.max_seconds)
        await self._store.delete(address_attempts)
        security_logger.warning(
            "address locked out of an account after repeated failures",
            extra={"ip": ip, "seconds": seconds, "strikes": strikes},
        )

    async def succeeded(self, email: str, *, ip: str | None = None) -> None:
        """A success resets the counts (an address's strike stays)."""
        ip = ip if ip is not None else current_client_ip()
        keys = [self._keys(email)[0]]
        if ip:
            keys.append(self._address_keys(email, ip)[0])
        await self._store.delete(*keys)

    async def clear(self, email: str, *, ip: str | None = None) -> None:
        """Lift the account's lock (after a password reset) and the resetting address's own state.

        Other struck addresses stay struck: a reset does not hand an attacker
        a fresh account lock.
        """
        ip = ip if ip is not None else current_client_ip()
        keys = [*self._keys(email)]
        if ip:
            keys.extend(self._address_keys(email, ip))
        await self._store.delete(*keys)
