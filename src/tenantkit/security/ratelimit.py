"""``RateLimiter``: GCRA limits over the kit's store that fail open to in-process limits.

Keys carry a Redis Cluster hash tag naming the subject (``rl:{ip:203.0.113.7}:login``,
``rl:{user:<uuid>}:api``, ``rl:{tenant:<uuid>}:api``) so every key of one subject
lives in one slot. Responses advertise the limits with the IETF draft header
fields (draft-ietf-httpapi-ratelimit-headers)::

    RateLimit-Policy: "auth";q=20;w=60
    RateLimit: "auth";r=19;t=3
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

from tenantkit.errors import RateLimitedError
from tenantkit.observability.metrics import Metrics
from tenantkit.settings import RateLimit
from tenantkit.stores.base import Store
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

    When the store fails (Redis down) the limiter fails open to a process-local
    ``MemoryStore``: limits still apply per process, one WARNING is logged per
    outage, and the store is probed again every ``retry_interval`` seconds until
    it answers, which ends the outage (logged once too).

    Args:
        store: The shared store (``kit.store``).
        metrics: Where refused events are counted (``tenantkit_rate_limited_total``).
        retry_interval: Seconds between probes of a failed store.
    """

    def __init__(self, store: Store, *, metrics: Metrics | None = None, retry_interval: float = 1.0) -> None:
        self.store = store
        self.metrics = metrics
        self.retry_interval = retry_interval
        self.fallback = MemoryStore()
        self._down_since: float | None = None
        self._next_probe = 0.0

    def __repr__(self) -> str:
        return f"RateLimiter(store={self.store.name!r}, degraded={self.degraded})"

    @property
    def degraded(self) -> bool:
        """True while the store is failing and in-process limits are used."""
        return self._down_since is not None

    async def hit(self, key: str, rate: RateLimit, *, policy: str) -> RateLimitResult:
        """Count one event for ``key`` against ``rate``; never raises for store outages.

        Args:
            key: A key from :func:`rate_key`; stored under ``rl:``.
            rate: The budget.
            policy: The name advertised in the response headers.
        """
        allowed, remaining, retry_after = await self.count("rl:" + key, rate, policy)
        return RateLimitResult(policy, rate.limit, rate.period, allowed, remaining, retry_after)

    async def count(self, full_key: str, rate: RateLimit, policy: str) -> tuple[bool, int, float]:
        """:meth:`hit` without the result object: ``(allowed, remaining, retry_after)``.

        The middleware's hot path. ``full_key`` already carries the ``rl:`` prefix.
        """
        now = time.monotonic()
        outcome: tuple[bool, int, float] | None = None
        if self._down_since is None or now >= self._next_probe:
            try:
                outcome = await self.store.hit(full_key, rate.limit, rate.period)
            except Exception as exc:
                self._next_probe = now + self.retry_interval
                if self._down_since is None:
                    self._down_since = now
                    logger.warning(
                        "rate-limit store %s unavailable (%s): using in-process limits until it recovers",
                        self.store.name,
                        type(exc).__name__,
                    )
            else:
                if self._down_since is not None:
                    logger.warning(
                        "rate-limit store %s recovered after %.1f s", self.store.name, now - self._down_since
                    )
                    self._down_since = None
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
