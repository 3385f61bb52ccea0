"""bcrypt password hashing off the event loop, without silent truncation.

bcrypt reads at most 72 bytes. Rather than truncate (or refuse long
passphrases), every password is first reduced to a fixed 44-byte string:
``base64(HMAC-SHA256(pepper, password))``. Base64 keeps NUL bytes out (bcrypt
stops at NUL), the HMAC keeps it keyed by an optional server-side pepper, and
the full password always counts. Inputs are capped at
``MAX_PASSWORD_BYTES`` to bound the work an attacker can request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from concurrent.futures import ThreadPoolExecutor

import bcrypt

__all__ = ["MAX_PASSWORD_BYTES", "PasswordHasher"]

MAX_PASSWORD_BYTES = 1024
_DEFAULT_PEPPER = b"tenantkit-password-v1"


class PasswordHasher:
    """Hash and verify passwords with bcrypt in a thread pool.

    Args:
        rounds: bcrypt cost (log2 of iterations).
        pepper: Optional server-side secret mixed into every hash. Changing it
            invalidates every stored password.
        executor: Thread pool for bcrypt (default: a small dedicated pool).
    """

    def __init__(
        self, rounds: int = 12, *, pepper: bytes | None = None, executor: ThreadPoolExecutor | None = None
    ) -> None:
        self.rounds = rounds
        self._pepper = pepper or _DEFAULT_PEPPER
        self._executor = executor or ThreadPoolExecutor(max_workers=4, thread_name_prefix="tenantkit-bcrypt")
        self._dummy: bytes | None = None

    def _prehash(self, password: str) -> bytes:
        digest = hmac.new(self._pepper, password.encode("utf-8"), hashlib.sha256).digest()
        return base64.b64encode(digest)

    async def _run(self, fn: object, *args: object) -> object:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)  # type: ignore[arg-type]

    async def hash(self, password: str) -> str:
        """A bcrypt hash of ``password`` at the configured cost."""
        salt = bcrypt.gensalt(self.rounds)
        hashed = await self._run(bcrypt.hashpw, self._prehash(password), salt)
        assert isinstance(hashed, bytes)
        return hashed.decode()

    async def verify(self, password: str, hashed: str | None) -> bool:
        """Check ``password`` against ``hashed``; with ``None`` run a dummy check and return False.

        The dummy check costs the same as a real one, so response time does not
        reveal whether an account exists.
        """
        if hashed is None:
            if self._dummy is None:
                self._dummy = (await self.hash("tenantkit-dummy-password")).encode()
            await self._run(bcrypt.checkpw, self._prehash(password), self._dummy)
            return False
        try:
            ok = await self._run(bcrypt.checkpw, self._prehash(password), hashed.encode())
        except ValueError:
            return False
        return bool(ok)

    def needs_rehash(self, hashed: str) -> bool:
        """True when ``hashed`` used a lower cost than configured."""
        try:
            return int(hashed.split("$")[2]) < self.rounds
        except (IndexError, ValueError):
            return True

    def close(self) -> None:
        self._executor.shutdown(wait=False)
