"""bcrypt password hashing off the event loop, bounded, without silent truncation.

bcrypt reads at most 72 bytes. Rather than truncate (or refuse long
passphrases), every password is first reduced to a fixed 44-byte string:
``base64(HMAC-SHA256(pepper, password))``. Base64 keeps NUL bytes out (bcrypt
stops at NUL), the HMAC keeps it keyed by an optional server-side pepper, and
the full password always counts. Inputs are capped at
``MAX_PASSWORD_BYTES`` to bound the work an attacker can request.

bcrypt runs in a pool of ``workers`` threads (the number of cores by
default). At most ``queue_limit`` jobs wait for a thread; past that a hash or
check is refused at once with :class:`~tenantkit.errors.ServiceUnavailableError`
(503 + ``Retry-After``), so a login storm queues a bounded amount of work and
never takes the event loop or the rest of the traffic down with it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import bcrypt

from tenantkit.errors import ServiceUnavailableError

__all__ = [
    "MAX_PASSWORD_BYTES",
    "UNUSABLE_PASSWORD_PREFIX",
    "PasswordHasher",
    "is_usable_password",
    "unusable_password",
]

MAX_PASSWORD_BYTES = 1024
_DEFAULT_PEPPER = b"tenantkit-password-v1"
#: Marks the ``password_hash`` of an account that has no password (it signs in
#: through an identity provider): no input ever verifies against it.
UNUSABLE_PASSWORD_PREFIX = "!"
_T = TypeVar("_T")


class PasswordHasher:
    """Hash and verify passwords with bcrypt in a bounded thread pool.

    Args:
        rounds: bcrypt cost (log2 of iterations).
        pepper: Optional server-side secret mixed into every hash. Changing it
            invalidates every stored password.
        workers: Threads running bcrypt (default: the number of cores).
        queue_limit: Jobs that may wait for a thread; one more is refused with
            :class:`~tenantkit.errors.ServiceUnavailableError` (503 + ``Retry-After``).
        executor: A thread pool to use instead of a dedicated one of ``workers``
            threads (``workers`` should then be its size).
    """

    def __init__(
        self,
        rounds: int = 12,
        *,
        pepper: bytes | None = None,
        workers: int | None = None,
        queue_limit: int = 32,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        if queue_limit < 0:
            raise ValueError("queue_limit must be >= 0")
        self.rounds = rounds
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.queue_limit = queue_limit
        self._pepper = pepper or _DEFAULT_PEPPER
        self._executor = executor or ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="tenantkit-bcrypt"
        )
        self._dummy: bytes | None = None
        self._lock = threading.Lock()
        self._in_flight = 0  # running + waiting, released when the thread is done (not when awaited)
        self._seconds_per_job = 0.25  # moving average, for Retry-After

    def __repr__(self) -> str:
        return f"PasswordHasher(rounds={self.rounds}, workers={self.workers}, queue_limit={self.queue_limit})"

    @property
    def waiting(self) -> int:
        """Jobs queued for a thread right now (not counting the running ones)."""
        return max(0, self._in_flight - self.workers)

    def _prehash(self, password: str) -> bytes:
        digest = hmac.new(self._pepper, password.encode("utf-8"), hashlib.sha256).digest()
        return base64.b64encode(digest)

    def _retry_after(self) -> int:
        """Seconds until the queue has room again, roughly (at least 1)."""
        backlog = self._in_flight / self.workers
        return max(1, math.ceil(backlog * self._seconds_per_job))

    def _full(self) -> ServiceUnavailableError | None:
        if self._in_flight >= self.workers + self.queue_limit:
            return ServiceUnavailableError(
                "Too many sign-ins are being checked right now; retry shortly.",
                headers={"Retry-After": str(self._retry_after())},
            )
        return None

    def ensure_capacity(self) -> None:
        """Refuse (503 + ``Retry-After``) now if a check would be refused for a full queue.

        Callers that count an attempt before checking (the lockout) ask first, so
        a sign-in turned away during a storm does not count against the account.
        """
        with self._lock:
            refusal = self._full()
        if refusal is not None:
            raise refusal

    def _admit(self) -> None:
        with self._lock:
            refusal = self._full()
            if refusal is not None:
                raise refusal
            self._in_flight += 1

    def _release(self, _: object) -> None:
        with self._lock:
            self._in_flight -= 1

    def _timed(self, fn: Callable[[bytes, bytes], _T], first: bytes, second: bytes) -> _T:
        started = time.perf_counter()
        try:
            return fn(first, second)
        finally:
            elapsed = time.perf_counter() - started
            self._seconds_per_job += (elapsed - self._seconds_per_job) * 0.2

    async def _run(self, fn: Callable[[bytes, bytes], _T], first: bytes, second: bytes) -> _T:
        """Run ``fn`` in the pool, or refuse (503) when ``queue_limit`` jobs already wait.

        The slot is released when the thread finishes, even if the caller was
        cancelled meanwhile: the bound counts the work really queued.
        """
        self._admit()
        try:
            future: Future[_T] = self._executor.submit(self._timed, fn, first, second)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    async def hash(self, password: str) -> str:
        """A bcrypt hash of ``password`` at the configured cost.

        Raises:
            ServiceUnavailableError: the queue is full (503 + ``Retry-After``).
        """
        salt = bcrypt.gensalt(self.rounds)
        hashed = await self._run(bcrypt.hashpw, self._prehash(password), salt)
        return hashed.decode()

    async def verify(self, password: str, hashed: str | None) -> bool:
        """Check ``password`` against ``hashed``; with ``None`` run a dummy check and return False.

        The dummy check costs the same as a real one and goes through the same
        queue, so neither response time nor a 503 reveals whether an account
        exists.

        Raises:
            ServiceUnavailableError: the queue is full (503 + ``Retry-After``).
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


def unusable_password() -> str:
    """A ``password_hash`` that never verifies (an account created by a federated sign-in)."""
    import secrets

    return UNUSABLE_PASSWORD_PREFIX + secrets.token_urlsafe(32)


def is_usable_password(hashed: str | None) -> bool:
    """Whether ``hashed`` is a real password hash (not :func:`unusable_password`)."""
    return bool(hashed) and not str(hashed).startswith(UNUSABLE_PASSWORD_PREFIX)
