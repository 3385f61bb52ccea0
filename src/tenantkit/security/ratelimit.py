"""``RateLimiter``: GCRA limits over the kit's store that fail open to in-process limits.

Keys carry a Redis Cluster hash tag naming the subject (``rl:{ip:203.0.113.7}:login``,
``rl:{user:<uuid>}:api``, ``rl:{tenant:<uuid>}:api``) so every key of one subject
lives in one slot. Responses advertise the limits with the IETF draft header
fields (draft-ietf-httpapi-ratelimit-headers)::

    RateLimit-Policy: "auth";q=20;w=60
    RateLimit: "auth";r=19;t=3

On a store that reconciles (Redis), :meth:`RateLimiter.count`, the middleware's
hot path, decides from process-local GCRA views (:class:`~tenantkit.stores.gcra.LocalGcra`)
and a background task sends the counts to the store every ``sync_interval``
seconds; :meth:`RateLimiter.hit` and :meth:`RateLimiter.check` stay exact (one
store round trip each) for the budgets that must be.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

from tenantkit.errors import RateLimitedError
from tenantkit.observability.metrics import Metrics
from tenantkit.settings import RateLimit
from tenantkit.stores.base import ReconcilingStore, Store
from tenantkit.stores.gcra import LocalGcra
from tenantkit.stores.memory import MemoryStore

__all__ = ["RateLimitResult", "RateLimiter", "account_subject", "limit_headers", "rate_key"]

logger = logging.getLogger("tenantkit.security")


def rate_key(kind: str, subject: str, name: str) -> str:
    """A limiter key such as ``{ip:203.0.113.7}:login`` (hash-tagged by subject).

    Args:
        kind: What the subject is (``ip``, ``user``, ``tenant``, ``account``).
        subject: Its identifier (braces are stripped so the hash tag stays intact).
        name: The policy or route the budget belongs to.
    """
    clean = subject.replace("{", "").replace("}", "")
    return f"{{{kind}:{clean}}}:{name}"


def account_subject(email: str) -> str:
    """A stable, non-reversible subject for an email address (no PII in store keys)."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    """The outcome of one counted event.

    Attributes:
        policy: The policy name advertised in the headers (``"auth"``, ``"api"``...).
        limit: Events allowed per window.
        period: Window length in seconds.
        allowed: Whether this event fits the budget.
        remaining: Events still allowed right now.
        retry_after: Seconds until the next event would be allowed (0 when allowed).
    """

    policy: str
    limit: int
    period: int
    allowed: bool
    remaining: int
    retry_after: float

    @property
    def retry_after_seconds(self) -> int:
        """``Retry-After`` value: whole seconds, at least 1."""
        return max(1, math.ceil(self.retry_after))

    @property
    def reset_seconds(self) -> int:
        """Seconds until the budget is whole again (``t`` of the ``RateLimit`` field)."""
        if not self.allowed:
            return self.retry_after_seconds
        used = max(0, self.limit - self.remaining)
        return math.ceil(used * self.period / self.limit)

    @property
    def policy_item(self) -> str:
        """This policy as an item of ``RateLimit-Policy``."""
        return f'"{self.policy}";q={self.limit};w={self.period}'

    @property
    def state_item(self) -> str:
        """The current state as an item of ``RateLimit``."""
        return f'"{self.policy}";r={self.remaining};t={self.reset_seconds}'


def limit_headers(results: Iterable[RateLimitResult]) -> dict[str, str]:
    """``RateLimit-Policy`` and ``RateLimit`` (and ``Retry-After`` when one is exceeded)."""
    items = list(results)
    if not items:
        return {}
    headers = {
        "RateLimit-Policy": ", ".join(r.policy_item for r in items),
        "RateLimit": ", ".join(r.state_item for r in items),
    }
    denied = [r for r in items if not r.allowed]
    if denied:
        headers["Retry-After"] = str(max(r.retry_after_seconds for r in denied))
    return headers


class RateLimiter:
    """Counts events against GCRA budgets in the kit's store.

    :meth:`count` (the middleware's per-request budgets) is decided in process
    when the store can reconcile (``RedisStore``): no I/O on the request, the
    counts reach Redis in batches every ``sync_interval`` seconds, and each
    process may allow at most ``local_share`` of a budget that Redis has not
    acknowledged yet (then that request asks Redis). With any other store
    (``MemoryStore``: one process, exact) or ``sync_interval=0`` every event is
    counted in the store. :meth:`hit` and :meth:`check` are always exact.

    When the store fails (Redis down) the limiter fails open to in-process
    limits: local views without the share cap for :meth:`count`, a process-local
    ``MemoryStore`` for :meth:`hit`. One WARNING is logged per outage, and the
    store is tried again every ``retry_interval`` seconds until it answers,
    which ends the outage (logged once too).

    Args:
        store: The shared store (``kit.store``).
        metrics: Where refused events are counted (``tenantkit_rate_limited_total``).
        retry_interval: Seconds between probes of a failed store.
        sync_interval: Seconds between reconciles of local decisions (0: none, exact).
        local_share: Fraction of a budget one process may spend between reconciles.
    """

    def __init__(
        self,
        store: Store,
        *,
        metrics: Metrics | None = None,
        retry_interval: float = 1.0,
        sync_interval: float = 0.1,
        local_share: float = 0.05,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.retry_interval = retry_interval
        self.sync_interval = sync_interval
        self.fallback = MemoryStore()
        self.local: LocalGcra | None = None
        self._shared: ReconcilingStore | None = None
        if sync_interval > 0 and isinstance(store, ReconcilingStore):
            self.local = LocalGcra(local_share)
            self._shared = store
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False
        self._calls: dict[str, asyncio.Future[None]] = {}  # keys with a store call in flight
        self._down_since: float | None = None
        self._next_probe = 0.0

    def __repr__(self) -> str:
        return f"RateLimiter(store={self.store.name!r}, degraded={self.degraded})"

    @property
    def degraded(self) -> bool:
        """True while the store is failing and in-process limits are used."""
        return self._down_since is not None

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        self._next_probe = now + self.retry_interval
        if self._down_since is None:
            self._down_since = now
            logger.warning(
                "rate-limit store %s unavailable (%s): using in-process limits until it recovers",
                self.store.name,
                type(exc).__name__,
            )

    def _answered(self) -> None:
        if self._down_since is not None:
            logger.warning(
                "rate-limit store %s recovered after %.1f s",
                self.store.name,
                time.monotonic() - self._down_since,
            )
            self._down_since = None

    async def hit(self, key: str, rate: RateLimit, *, policy: str) -> RateLimitResult:
        """Count one event for ``key`` against ``rate`` in the store (exact); never raises for outages.

        Args:
            key: A key from :func:`rate_key`; stored under ``rl:``.
            rate: The budget.
            policy: The name advertised in the response headers.
        """
        allowed, remaining, retry_after = await self._exact("rl:" + key, rate, policy)
        return RateLimitResult(policy, rate.limit, rate.period, allowed, remaining, retry_after)

    async def count(
        self, full_key: str, rate: RateLimit, policy: str, *, exact: bool = False
    ) -> tuple[bool, int, float]:
        """:meth:`hit` without the result object: ``(allowed, remaining, retry_after)``.

        The middleware's hot path: decided in process unless ``exact`` (or the
        store does not reconcile). ``full_key`` already carries the ``rl:`` prefix.
        """
        local = self.local
        if local is None or exact:
            return await self._exact(full_key, rate, policy)
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._reconcile_forever())
        now = time.time()
        outcome = local.decide(full_key, rate.limit, rate.period, now, capped=self._down_since is None)
        if outcome is None:
            outcome = await self._ask(local, full_key, rate, now)
        if not outcome[0] and self.metrics is not None:
            self.metrics.rate_limited.labels(policy).inc()
        return outcome

    async def _ask(self, local: LocalGcra, key: str, rate: RateLimit, now: float) -> tuple[bool, int, float]:
        """This process spent its share: send its counts and decide this event in the store.

        One store call per key at a time: a request that finds one in flight waits
        for it and decides again on the fresh view.
        """
        assert self._shared is not None
        calls = self._calls
        while (call := calls.get(key)) is not None:
            await asyncio.shield(call)
            now = time.time()
            outcome = local.decide(key, rate.limit, rate.period, now, capped=self._down_since is None)
            if outcome is not None:
                return outcome
        done = calls[key] = asyncio.get_running_loop().create_future()
        sent = local.begin(key)
        try:
            ((taken, tat),) = await self._shared.reconcile([(key, sent, rate.limit, rate.period, True)], now)
        except BaseException as exc:
            local.abort(key, sent)  # not taken (or unknown, if cancelled): sent again later
            if not isinstance(exc, Exception):
                raise
            self._failed(exc)
            outcome = local.decide(key, rate.limit, rate.period, now, capped=False)
            assert outcome is not None
            return outcome
        finally:
            del calls[key]
            done.set_result(None)
        self._answered()
        view = local.settle(key, sent, tat, now)
        interval = rate.period / rate.limit
        if taken:
            remaining = math.floor((rate.period - (view - now)) / interval + 1e-9)
            return True, max(0, remaining), 0.0
        return False, 0, max(0.001, view + interval - rate.period - now)

    async def flush(self) -> None:
        """Send the counts decided locally since the last flush and rebase the views on the answers.

        While the store is down this is also the probe (every ``retry_interval``).
        """
        local, shared = self.local, self._shared
        if local is None or shared is None:
            return
        if self._down_since is not None:
            if time.monotonic() < self._next_probe:
                return
            if not local.dirty:
                try:
                    await self.store.ping()
                except Exception as exc:
                    self._failed(exc)
                else:
                    self._answered()
                return
        if not local.dirty:
            return
        batch = local.take(busy=self._calls)
        if not batch:
            return
        done = asyncio.get_running_loop().create_future()
        for key, *_ in batch:
            self._calls[key] = done
        now = time.time()
        answers: list[tuple[bool, float]] = []
        try:
            for start in range(0, len(batch), _BATCH):
                chunk = batch[start : start + _BATCH]
                answers += await shared.reconcile([(k, n, lim, per, False) for k, n, lim, per in chunk], now)
        except BaseException as exc:
            for key, sent, _, _ in batch[len(answers) :]:
                local.abort(key, sent)
            if not isinstance(exc, Exception):
                raise
            self._failed(exc)
        else:
            self._answered()
        finally:
            for (key, sent, _, _), (_, tat) in zip(batch, answers, strict=False):
                local.settle(key, sent, tat, now)
            for key, *_ in batch:
                del self._calls[key]
            done.set_result(None)

    async def _reconcile_forever(self) -> None:
        # Stops on the flag, not only on cancellation: a cancel that lands inside the
        # Redis client may be swallowed there, and close() must not wait forever.
        while not self._closing:
            await asyncio.sleep(self.sync_interval)
            try:
                await self.flush()
            except Exception:  # pragma: no cover - flush handles store errors itself
                logger.exception("rate-limit reconcile failed")

    async def close(self) -> None:
        """Stop the background reconcile and send what is still pending (best effort)."""
        task, self._flusher = self._flusher, None
        if task is None:
            return
        self._closing = True
        task.cancel()
        await asyncio.wait({task}, timeout=5)
        with contextlib.suppress(Exception):
            await self.flush()
        self._closing = False

    async def _exact(self, full_key: str, rate: RateLimit, policy: str) -> tuple[bool, int, float]:
        now = time.monotonic()
        outcome: tuple[bool, int, float] | None = None
        if self._down_since is None or now >= self._next_probe:
            try:
                outcome = await self.store.hit(full_key, rate.limit, rate.period)
            except Exception as exc:
                self._failed(exc)
            else:
                self._answered()
        if outcome is None:
            outcome = await self.fallback.hit(full_key, rate.limit, rate.period)
        if not outcome[0] and self.metrics is not None:
            self.metrics.rate_limited.labels(policy).inc()
        return outcome

    async def check(self, key: str, rate: RateLimit | str, *, policy: str = "custom") -> RateLimitResult:
        """Like :meth:`hit`, but raise ``RateLimitedError`` (429) when the budget is spent.

        Example:
            ```python
            await kit.rate_limiter.check(rate_key("account", account_subject(email), "login"), "5/minute")
            ```

        Raises:
            RateLimitedError: with ``Retry-After``, ``RateLimit`` and ``RateLimit-Policy``.
        """
        parsed = RateLimit.parse(rate) if isinstance(rate, str) else rate
        result = await self.hit(key, parsed, policy=policy)
        if not result.allowed:
            raise RateLimitedError(
                f"Too many requests; retry in {result.retry_after_seconds} s.",
                headers=limit_headers([result]),
            )
        return result


_BATCH = 500  # keys per pipelined reconcile
