"""The generic cell rate algorithm, and its process-local mirror reconciled in batches.

:func:`gcra` is one exact step (the memory store runs it; the Redis store runs the
same arithmetic in Lua). :class:`LocalGcra` holds, per key, this process's view of
the shared theoretical arrival time (TAT) plus the events it allowed since the view
was last reconciled, so a decision needs no I/O. See ``docs/concepts/security.md``
for the accuracy bound.
"""

from __future__ import annotations

import math
from collections.abc import Container

__all__ = ["LocalGcra", "gcra", "share_of"]


def gcra(tat: float, now: float, limit: int, period: float) -> tuple[bool, float, int, float]:
    """One GCRA step.

    Args:
        tat: The stored theoretical arrival time (0 when none).
        now: The current time in seconds.
        limit: Events allowed per ``period``.
        period: Window length in seconds.

    Returns:
        ``(allowed, new_tat, remaining, retry_after)``.
    """
    interval = period / limit
    if tat < now:
        tat = now
    new_tat = tat + interval
    allow_at = new_tat - period
    if allow_at > now:
        return False, tat, 0, allow_at - now
    remaining = math.floor((period - (new_tat - now)) / interval + 1e-9)
    return True, new_tat, remaining if remaining > 0 else 0, 0.0


def share_of(limit: int, share: float) -> int:
    """Events one process may allow on its own between two reconciles: ``max(1, ⌊share·limit⌋)``."""
    return max(1, math.floor(limit * share + 1e-9))


class _Bucket:
    __slots__ = ("cap", "inflight", "limit", "period", "tat", "unsent")

    def __init__(self, limit: int, period: float, cap: int) -> None:
        self.tat = 0.0  # the shared TAT as last reconciled, advanced by this process's own events
        self.unsent = 0  # events allowed here and not yet sent to the store
        self.inflight = 0  # events sent and not yet acknowledged
        self.limit = limit
        self.period = period
        self.cap = cap


class LocalGcra:
    """Per-key GCRA views held in process, reconciled with a shared store in batches.

    A decision (:meth:`decide`) is a GCRA step on the local view. The view is the
    shared TAT as of the last reconcile plus this process's own events, so it never
    runs ahead of the truth: a local refusal is always right. A local *allowance*
    may be wrong by what other processes allowed since; each process may allow at
    most ``share_of(limit, share)`` events that the store has not acknowledged, after
    which :meth:`decide` answers ``None`` (ask the store now).

    The reconcile protocol: :meth:`take` (or :meth:`begin` for one key) moves the
    unsent counts to in flight and returns them; the store adds them to the shared
    TAT and answers the new TAT; :meth:`settle` rebases the view on it, or
    :meth:`abort` puts the counts back when the store failed.

    Args:
        share: Fraction of each budget a process may spend between reconciles.
        max_keys: Views kept; idle, fully acknowledged views are dropped first.
    """

    def __init__(self, share: float, *, max_keys: int = 100_000) -> None:
        self.share = share
        self.max_keys = max_keys
        self.buckets: dict[str, _Bucket] = {}
        self.dirty: set[str] = set()

    def __len__(self) -> int:
        return len(self.buckets)

    def decide(
        self, key: str, limit: int, period: float, now: float, *, capped: bool = True
    ) -> tuple[bool, int, float] | None:
        """``(allowed, remaining, retry_after)`` from the view, or ``None`` when the share is spent.

        With ``capped=False`` (the store is down) the view is a plain in-process limit.
        """
        bucket = self.buckets.get(key)
        if bucket is None or bucket.limit != limit or bucket.period != period:
            if bucket is None and len(self.buckets) >= self.max_keys:
                self._evict(now)
            bucket = self.buckets[key] = _Bucket(limit, period, share_of(limit, self.share))
        allowed, new_tat, remaining, retry_after = gcra(bucket.tat, now, limit, period)
        if not allowed:
            return False, 0, retry_after  # the view never runs ahead of the truth: refuse here
        if capped and bucket.unsent + bucket.inflight >= bucket.cap:
            return None
        bucket.tat = new_tat
        bucket.unsent += 1
        self.dirty.add(key)
        return True, remaining, 0.0

    def begin(self, key: str) -> int:
        """Move ``key``'s unsent events in flight; returns their count."""
        bucket = self.buckets[key]
        sent = bucket.unsent
        bucket.unsent = 0
        bucket.inflight += sent
        self.dirty.discard(key)
        return sent

    def take(self, busy: Container[str] = ()) -> list[tuple[str, int, int, float]]:
        """Every dirty key not in ``busy`` as ``(key, count, limit, period)``, its count moved in flight.

        ``busy`` holds the keys with a store call in flight (one at a time per key,
        so answers are settled in the order the store applied them).
        """
        batch = []
        for key in [k for k in self.dirty if k not in busy]:
            bucket = self.buckets[key]
            batch.append((key, bucket.unsent, bucket.limit, bucket.period))
            bucket.inflight += bucket.unsent
            bucket.unsent = 0
            self.dirty.discard(key)
        return batch

    def abort(self, key: str, sent: int) -> None:
        """The store did not take ``sent`` events: they are unsent again."""
        bucket = self.buckets.get(key)
        if bucket is None:
            return
        bucket.inflight -= sent
        bucket.unsent += sent
        if bucket.unsent:
            self.dirty.add(key)

    def settle(self, key: str, sent: int, tat: float, now: float) -> float:
        """The store took ``sent`` events and answered the shared ``tat``; returns the new view.

        The events allowed here since the call was sent are added on top. Callers
        keep one call per key in flight, so answers arrive in the store's order.
        """
        bucket = self.buckets.get(key)
        if bucket is None:
            return tat
        bucket.inflight -= sent
        own = bucket.unsent + bucket.inflight
        bucket.tat = (tat if tat > now else now) + own * bucket.period / bucket.limit
        return bucket.tat

    def _evict(self, now: float) -> None:
        """Drop idle views (nothing pending, budget whole), then any view with nothing pending."""
        buckets = self.buckets
        idle = [k for k, b in buckets.items() if not b.unsent and not b.inflight and b.tat <= now]
        for key in idle:
            del buckets[key]
        if len(buckets) < self.max_keys:
            return
        for key in [k for k, b in buckets.items() if not b.unsent and not b.inflight]:
            del buckets[key]
            if len(buckets) < self.max_keys // 2:
                return
